// Writing answers: text, JSON (BigInt as exact number literals), errors.
import type { ServerResponse } from 'node:http'
import { toJson } from './json.js'
import { toHttpError } from './errors.js'

export function sendText (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendJson (res: ServerResponse, status: number, value: unknown): void {
  sendJsonText(res, status, toJson(value))
}

/** A body that is JSON text already (hot paths build it directly). */
export function sendJsonText (res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

export function sendNoContent (res: ServerResponse): void {
  res.writeHead(204).end()
}

/** Any thrown value as a JSON `{"error", ...}` answer with its status. */
export function sendError (res: ServerResponse, err: unknown): void {
  const e = toHttpError(err)
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = toJson({ error: e.message, ...e.extra })
  res.writeHead(e.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...e.headers })
  res.end(body)
}

/** Entries rendered per turn of the event loop when building a page. */
const PAGE_SLICE = 1000

/**
 * Send `{"<key>": [...], "next": cursor}` for a page of up to 10,000 names,
 * rendering `PAGE_SLICE` entries (each already JSON text) per turn of the
 * event loop, so a big page never stalls other requests for long.
 */
export async function sendPage (res: ServerResponse, key: string, names: readonly string[], render: (name: string) => string, next: string | null): Promise<void> {
  const parts: string[] = []
  for (let i = 0; i < names.length; i++) {
    if (i > 0 && i % PAGE_SLICE === 0) await new Promise(resolve => setImmediate(resolve))
    parts.push(render(names[i]))
  }
  const body = `{${JSON.stringify(key)}:[${parts.join(',')}],"next":${JSON.stringify(next)}}`
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}
