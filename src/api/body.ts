// Request bodies: size limits, content types, and the body rules of the
// write routes (increment, counter batch, items).
import type { IncomingMessage } from 'node:http'
import { isUtf8 } from 'node:buffer'
import { HttpError, badRequest } from './errors.js'
import type { Ctx } from './route.js'
import { isValidName, parseIncrement } from '../validate.js'
import type { ItemRef } from '../service.js'

export const NAME_RULE = 'counter name must be 1-200 characters of A-Z a-z 0-9 . _ ~ -'
export const INCREMENT_RULE = 'increment must be a decimal integer between 1 and 9007199254740991'
/** Names per POST /counters and items per POST /items. */
export const MAX_BATCH = 10000

/**
 * Read the whole body, refusing more than `limit` bytes with 413. Read with
 * 'data' events, not `for await`: the stream's async iterator cost a few
 * microseconds a request, which the single-increment path pays on every call.
 */
export async function readBody (req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw tooLarge(req, limit)
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= limit) {
        chunks.push(chunk)
        return
      }
      req.off('data', onData)
      reject(tooLarge(req, limit))
    }
    req.on('data', onData)
    req.once('end', () => { resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)) })
    req.once('error', reject)
    // A client that goes away mid-body: nothing to answer, nothing counted.
    req.once('close', () => { if (!req.complete) reject(new HttpError(400, 'request aborted')) })
  })
  // Decoding would turn invalid bytes into U+FFFD and accept them (an item id
  // must be UTF-8): refuse instead.
  if (!isUtf8(body)) throw badRequest('body is not valid UTF-8')
  return body.toString('utf8')
}

/** How long the rest of a refused body is read and dropped before the connection is cut. */
const DISCARD_MS = 10000

/**
 * 413, while the rest of the body is read and dropped: closing at once
 * resets a client still sending, which then reports a broken pipe instead
 * of the 413 (as nginx's lingering close avoids). A client that keeps
 * sending past DISCARD_MS is cut off.
 */
function tooLarge (req: IncomingMessage, limit: number): HttpError {
  const cut = setTimeout(() => { req.socket.destroy() }, DISCARD_MS).unref()
  req.once('end', () => { clearTimeout(cut) })
  req.once('close', () => { clearTimeout(cut) })
  req.resume()
  return new HttpError(413, `body larger than ${limit} bytes`)
}

function mediaType (req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
}

export function isJson (req: IncomingMessage): boolean { return mediaType(req) === 'application/json' }
export function isNdjson (req: IncomingMessage): boolean { return mediaType(req) === 'application/x-ndjson' }

export function parseJson (text: string, what = 'body'): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw badRequest(`malformed JSON ${what}`)
  }
}

export function checkName (name: string): string {
  if (!isValidName(name)) throw badRequest(NAME_RULE)
  return name
}

/** The JSON number literal of `"value"` in the raw body: rejects 1e3 and 5.0 like the text form. */
function jsonValueLiteralIsInteger (text: string): boolean {
  const m = /"value"\s*:\s*([^\s,}]+)/.exec(text)
  return m === null || /^[0-9]+$/.test(m[1])
}

/** The increment of POST /counter/:name from body or ?by= (empty = 1). */
export async function readIncrement (ctx: Ctx, limit: number): Promise<bigint> {
  const text = await readBody(ctx.req, limit)
  if (ctx.query.getAll('by').length > 1) throw badRequest('give ?by= once')
  const by = ctx.query.get('by')
  const bodyEmpty = text.trim() === ''
  if (by !== null) {
    if (!bodyEmpty) throw badRequest('give the increment in the body or as ?by=, not both')
    return parseIncrement(by) ?? (() => { throw badRequest(INCREMENT_RULE) })()
  }
  if (bodyEmpty) return 1n
  let raw: unknown = text.trim()
  if (isJson(ctx.req)) {
    const parsed = parseJson(text)
    if (typeof parsed === 'number') {
      if (!/^\s*[0-9]+\s*$/.test(text)) throw badRequest(INCREMENT_RULE)
      raw = parsed
    } else if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && 'value' in parsed) {
      raw = (parsed as { value: unknown }).value
      // A JSON number written as digits: not "5", 5.0 or 5e0.
      if (typeof raw !== 'number' || !jsonValueLiteralIsInteger(text)) throw badRequest(INCREMENT_RULE)
    } else {
      throw badRequest('JSON body must be {"value": N}')
    }
  }
  const n = parseIncrement(raw)
  if (n === undefined) throw badRequest(INCREMENT_RULE)
  return n
}

/**
 * Body of POST /counters: a JSON object {name: N, ...}, or NDJSON lines
 * {"name": "...", "value": N}. Content-Type application/x-ndjson means lines;
 * otherwise a body of one line that is an object is the object form, unless
 * its "name" is a string (never valid in the object form, where values are
 * numbers): then it is a single NDJSON line. Values are JSON numbers written
 * as digits (not "3", 5.0, 1e3 or -1).
 */
export async function readCounterBatch (ctx: Ctx, limit: number): Promise<Array<[string, bigint]>> {
  const text = await readBody(ctx.req, limit)
  const items = new Map<string, bigint>()
  const add = (name: unknown, v: unknown): void => {
    if (typeof name !== 'string') throw badRequest('batch entries need a counter name')
    checkName(name)
    const n = typeof v === 'number' ? parseIncrement(v) : undefined
    if (n === undefined) throw badRequest(`${name}: ${INCREMENT_RULE}`)
    const total = (items.get(name) ?? 0n) + n
    if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw badRequest(`${name}: ${INCREMENT_RULE}`)
    items.set(name, total)
  }
  const addLine = (line: string, obj: unknown): void => {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw badRequest('NDJSON lines must be {"name": "...", "value": N}')
    const { name, value } = obj as { name?: unknown, value?: unknown }
    if (value === undefined) throw badRequest('NDJSON lines must be {"name": "...", "value": N}')
    if (!jsonValueLiteralIsInteger(line)) throw badRequest(INCREMENT_RULE)
    add(name, value)
  }
  const trimmed = text.trim()
  if (!isNdjson(ctx.req) && trimmed.startsWith('{') && !trimmed.includes('\n')) {
    const obj = parseJson(trimmed)
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw badRequest('batch body must be a JSON object {"name": N, ...}')
    if (typeof (obj as { name?: unknown }).name === 'string') {
      addLine(trimmed, obj)
    } else {
      // A value written as 1e3, 5.0 or -1 (JSON.parse hides the difference). A
      // ':' inside a string never belongs to a valid body (names cannot hold
      // one), so the raw text is tested as it is.
      if (/:\s*(?:-|[0-9]+[eE.])/.test(trimmed)) throw badRequest(INCREMENT_RULE)
      for (const [name, v] of Object.entries(obj as Record<string, unknown>)) add(name, v)
    }
  } else {
    for (const line of trimmed.split('\n')) {
      if (line.trim() === '') continue
      addLine(line, parseJson(line))
    }
  }
  if (items.size === 0) throw badRequest('empty batch')
  if (items.size > MAX_BATCH) throw badRequest(`at most ${MAX_BATCH} counters per batch`)
  return [...items]
}

/**
 * Body of POST /items: a JSON array of {"id", "tenant"} objects, or NDJSON of
 * them with Content-Type application/x-ndjson. Only the shape is checked
 * here (an object per item, 1-MAX_BATCH of them); the tenant and id rules
 * are the service's, which names the index of the first bad item.
 */
export async function readItems (ctx: Ctx, limit: number): Promise<ItemRef[]> {
  const text = await readBody(ctx.req, limit)
  let items: unknown[]
  if (isNdjson(ctx.req)) {
    items = []
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      items.push(parseJson(line, `in item ${items.length}`))
      if (items.length > MAX_BATCH) break
    }
  } else {
    const parsed = parseJson(text)
    if (!Array.isArray(parsed)) throw badRequest('body must be a JSON array [{"id": "...", "tenant": "..."}, ...] (or NDJSON with Content-Type: application/x-ndjson)')
    items = parsed
  }
  if (items.length < 1 || items.length > MAX_BATCH) throw badRequest(`send 1-${MAX_BATCH} items`)
  items.forEach((item, index) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new HttpError(400, `item ${index}: must be an object {"id": "...", "tenant": "..."}`, { index })
    }
  })
  return items as ItemRef[]
}
