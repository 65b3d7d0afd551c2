// Writing answers: text, JSON (BigInt as exact number literals), errors.
import type { ServerResponse } from 'node:http'
import { toJson } from './json.js'
import { toHttpError } from './errors.js'

export function sendText (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = toJson(value)
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
