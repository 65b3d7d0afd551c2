// The HTTP API on node:http (no framework): the increment path is a handful
// of string operations and one awaited group commit. See README "HTTP API".
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Replica } from '../replica.js'
import type { CountdService } from '../service.js'
import { UnreachableError, CountdError } from '../errors.js'

/** HTTP status of each error code of src/errors.ts. */
const STATUS_OF: Record<string, number> = { bad_input: 400, unreachable: 503, disk_full: 507, storage: 503, ids_unavailable: 503, idempotency_conflict: 422, not_implemented: 501 }
import { isRetired, IdempotencyConflictError, NotJoinedError } from '../replica.js'
import type { ClusterView } from './cluster-view.js'
import { HttpError, badRequest } from './errors.js'
import { toJson } from './json.js'
import { isValidName, parseIncrement } from '../validate.js'
import { registry, metrics, renderMetrics } from '../metrics.js'
import { openapi } from './openapi.js'
import { answerClientError } from './client-error.js'

export const BODY_LIMIT = 64 * 1024
const MAX_BATCH = 10000

export interface ApiOptions {
  service: CountdService
  replica: Replica
  cluster: ClusterView
  /** Advertised HTTP address (host:port) for /status. */
  http: string
  consistentTimeoutSec: number
  startedAt: number
  /** If set, every route but /health needs `Authorization: Bearer <token>`. */
  apiToken?: string
}

interface Ctx {
  req: IncomingMessage
  res: ServerResponse
  url: { pathname: string, searchParams: URLSearchParams }
  params: string[]
}

type Handler = (ctx: Ctx) => Promise<void> | void

interface Route {
  /** Pattern label for metrics, e.g. "/counter/:name/value". */
  label: string
  match: (parts: string[]) => string[] | undefined
  methods: Record<string, Handler>
}

export function createApi (o: ApiOptions): Server {
  const routes = buildRoutes(o)
  const authorized = o.apiToken !== undefined ? bearerCheck(o.apiToken) : () => true
  const server = createServer((req, res) => { void dispatch(routes, authorized, req, res) })
  server.on('clientError', answerClientError)
  server.keepAliveTimeout = 65000
  server.headersTimeout = 66000
  server.requestTimeout = 120000
  return server
}

/** Constant-time bearer token check (hashing first makes lengths equal). */
function bearerCheck (token: string): (req: IncomingMessage) => boolean {
  const want = createHash('sha256').update(token).digest()
  return req => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    return m !== null && timingSafeEqual(createHash('sha256').update(m[1]).digest(), want)
  }
}

async function dispatch (routes: Route[], authorized: (req: IncomingMessage) => boolean, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now()
  let label = 'unknown'
  try {
    // Split the raw target ourselves: URL parsing would resolve "." and
    // ".." segments, which are valid counter names.
    const target = req.url ?? '/'
    const q = target.indexOf('?')
    const pathname = q === -1 ? target : target.slice(0, q)
    const url = { pathname, searchParams: new URLSearchParams(q === -1 ? '' : target.slice(q + 1)) }
    let parts: string[]
    try {
      // Exact segments: "/counter//value", a trailing slash or "//counter"
      // keep their empty segments, so they match no route (404).
      parts = pathname.split('/').slice(1).map(decodeURIComponent)
      if (!pathname.startsWith('/')) parts = ['\u0000not-a-path']
    } catch {
      throw badRequest('malformed URL encoding')
    }
    let matched: Route | undefined
    let params: string[] | undefined
    for (const r of routes) {
      params = r.match(parts)
      if (params !== undefined) { matched = r; break }
    }
    if (matched?.label !== '/health' && !authorized(req)) {
      throw new HttpError(401, 'missing or wrong bearer token', {}, { 'WWW-Authenticate': 'Bearer' })
    }
    if (matched === undefined || params === undefined) throw new HttpError(404, `no such path: ${url.pathname}`)
    label = matched.label
    const handler = matched.methods[req.method ?? 'GET'] ?? (req.method === 'HEAD' ? matched.methods.GET : undefined)
    if (handler === undefined) {
      throw new HttpError(405, `method ${String(req.method)} not allowed on ${matched.label}`, {}, { Allow: Object.keys(matched.methods).join(', ') })
    }
    await handler({ req, res, url, params })
  } catch (err) {
    sendError(res, err)
  } finally {
    metrics.httpRequests.inc({ route: label, status: res.statusCode })
    metrics.httpLatency.observe({ route: label }, (performance.now() - started) / 1000)
  }
}

function sendError (res: ServerResponse, err: unknown): void {
  const e = err instanceof HttpError
    ? err
    : err instanceof NotJoinedError
      ? new HttpError(503, err.message, {}, { 'Retry-After': '1' })
      : err instanceof CountdError && STATUS_OF[err.code] !== undefined ? new HttpError(STATUS_OF[err.code], err.message, err.extra) : new HttpError(500, 'internal error')
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = toJson({ error: e.message, ...e.extra })
  res.writeHead(e.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...e.headers })
  res.end(body)
}

function sendText (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = toJson(value)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

/** Read the whole body, refusing more than BODY_LIMIT bytes with 413. */
async function readBody (req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > BODY_LIMIT) {
    req.resume()
    throw tooLarge()
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > BODY_LIMIT) {
      req.resume()
      throw tooLarge()
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function tooLarge (): HttpError {
  return new HttpError(413, `body larger than ${BODY_LIMIT} bytes`, {}, { Connection: 'close' })
}

function isJson (req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/json'
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw badRequest('malformed JSON body')
  }
}

function checkName (name: string): string {
  if (!isValidName(name)) throw badRequest('counter name must be 1-200 characters of A-Z a-z 0-9 . _ ~ -')
  return name
}

const INCREMENT_RULE = 'increment must be a decimal integer between 1 and 9007199254740991'

/** The JSON number literal of `"value"` in the raw body: rejects 1e3 and 5.0 like the text form. */
function jsonValueLiteralIsInteger (text: string): boolean {
  const m = /"value"\s*:\s*([^\s,}]+)/.exec(text)
  return m === null || /^[0-9]+$/.test(m[1])
}

/** The increment of POST /counter/:name from body or ?by= (empty = 1). */
async function readIncrement (ctx: Ctx): Promise<bigint> {
  const text = await readBody(ctx.req)
  if (ctx.url.searchParams.getAll('by').length > 1) throw badRequest('give ?by= once')
  const by = ctx.url.searchParams.get('by')
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

/** Body of POST /counters: JSON object {name: N, ...} or NDJSON lines {"name": .., "value": N}. */
async function readBatch (ctx: Ctx): Promise<Array<[string, bigint]>> {
  const text = await readBody(ctx.req)
  const items = new Map<string, bigint>()
  const add = (name: unknown, v: unknown): void => {
    if (typeof name !== 'string') throw badRequest('batch entries need a counter name')
    checkName(name)
    const n = parseIncrement(v)
    if (n === undefined) throw badRequest(`${name}: ${INCREMENT_RULE}`)
    const total = (items.get(name) ?? 0n) + n
    if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw badRequest(`${name}: ${INCREMENT_RULE}`)
    items.set(name, total)
  }
  const trimmed = text.trim()
  if (trimmed.startsWith('{') && !trimmed.includes('\n')) {
    const obj = parseJson(trimmed)
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw badRequest('batch body must be a JSON object {"name": N, ...}')
    if (/[0-9][eE.]|:\s*-/.test(trimmed.replace(/"(?:[^"\\]|\\.)*"/g, '""'))) throw badRequest(INCREMENT_RULE)
    for (const [name, v] of Object.entries(obj as Record<string, unknown>)) add(name, v)
  } else {
    for (const line of trimmed.split('\n')) {
      if (line.trim() === '') continue
      const obj = parseJson(line) as { name?: unknown, value?: unknown } | null
      if (obj === null || typeof obj !== 'object') throw badRequest('NDJSON lines must be {"name": "...", "value": N}')
      if (!jsonValueLiteralIsInteger(line)) throw badRequest(INCREMENT_RULE)
      add(obj.name, obj.value ?? 1)
    }
  }
  if (items.size === 0) throw badRequest('empty batch')
  if (items.size > MAX_BATCH) throw badRequest(`at most ${MAX_BATCH} counters per batch`)
  return [...items]
}

/** The Idempotency-Key header, if any: 1-255 visible ASCII characters. */
function idempotencyKeyOf (req: IncomingMessage): string | undefined {
  const key = req.headers['idempotency-key']
  if (key === undefined) return undefined
  if (typeof key !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(key)) throw badRequest('Idempotency-Key must be 1-255 visible ASCII characters')
  return key
}

function parseTimeout (ctx: Ctx, defaultSec: number): number {
  const t = ctx.url.searchParams.get('timeout')
  if (t === null) return defaultSec * 1000
  if (!/^[0-9]+(\.[0-9]+)?$/.test(t) || Number(t) <= 0 || Number(t) > 300) throw badRequest('timeout must be a number of seconds in (0, 300]')
  return Math.max(1, Math.round(Number(t) * 1000))
}

/** Every route and its methods, for the OpenAPI consistency test. */
export function routeTable (): Array<{ path: string, methods: string[] }> {
  return buildRoutes({} as unknown as ApiOptions).map(r => ({ path: r.label, methods: Object.keys(r.methods) }))
}

function route (label: string, methods: Record<string, Handler>): Route {
  const pattern = label.split('/').slice(1)
  return {
    label,
    methods,
    match: parts => {
      if (parts.length !== pattern.length) return undefined
      const params: string[] = []
      for (let i = 0; i < parts.length; i++) {
        if (pattern[i].startsWith(':')) {
          if (parts[i] === '') return undefined
          params.push(parts[i])
        }
        else if (pattern[i] !== parts[i]) return undefined
      }
      return params
    }
  }
}

function buildRoutes (o: ApiOptions): Route[] {
  const { replica, cluster } = o
  return [
    route('/counter/:name', {
      POST: async ctx => {
        const name = checkName(ctx.params[0])
        const key = idempotencyKeyOf(ctx.req)
        const by = await readIncrement(ctx)
        if (key === undefined) {
          sendText(ctx.res, 200, (await replica.increment(name, by)).toString())
          return
        }
        try {
          sendText(ctx.res, 200, (await replica.incrementOnce(key, name, by, Date.now())).toString())
        } catch (err) {
          if (err instanceof IdempotencyConflictError) throw new HttpError(422, err.message)
          throw err
        }
      },
      GET: ctx => {
        const name = checkName(ctx.params[0])
        sendJson(ctx.res, 200, { name, value: replica.value(name), replicas: Object.fromEntries(replica.entriesOf(name)) })
      }
    }),
    route('/counter/:name/value', {
      GET: ctx => { sendText(ctx.res, 200, replica.value(checkName(ctx.params[0])).toString()) }
    }),
    route('/counter/:name/consistent_value', {
      GET: async ctx => {
        const name = checkName(ctx.params[0])
        const timeoutMs = parseTimeout(ctx, o.consistentTimeoutSec)
        try {
          sendText(ctx.res, 200, (await o.service.consistentValue(name, timeoutMs)).toString())
        } catch (err) {
          if (err instanceof UnreachableError) throw new HttpError(503, err.message, { bestGuess: err.bestGuess, unreachable: err.unreachable })
          throw err
        }
      }
    }),
    route('/counters', {
      GET: ctx => {
        const list: Array<{ name: string, value: bigint }> = []
        for (const [name, c] of replica.counters.byName) list.push({ name, value: c.value })
        sendJson(ctx.res, 200, list)
      },
      POST: async ctx => {
        const items = await readBatch(ctx)
        const values = await replica.incrementMany(items)
        sendJson(ctx.res, 200, Object.fromEntries(items.map(([name], i) => [name, values[i]])))
      }
    }),
    route('/config', {
      POST: async ctx => {
        const body = parseJson(await readBody(ctx.req)) as { actors?: unknown } | null
        const actors = body?.actors
        if (!Array.isArray(actors) || !actors.every(a => typeof a === 'string' && a.length > 0 && a.length < 512)) {
          throw badRequest('body must be {"actors": ["host:port" | multiaddr, ...]}')
        }
        try {
          cluster.checkAddrs(actors)
        } catch (err: any) {
          throw badRequest(err.message)
        }
        await cluster.connect(actors)
        ctx.res.writeHead(204).end()
      }
    }),
    route('/members', {
      GET: ctx => { sendJson(ctx.res, 200, memberList(o, true)) }
    }),
    route('/members/:id', {
      DELETE: ctx => {
        const id = ctx.params[0]
        if (id === replica.id) throw new HttpError(409, 'a node cannot retire itself')
        if (!replica.members.retire(id, Date.now())) throw new HttpError(404, `no member ${id}`)
        ctx.res.writeHead(204).end()
      }
    }),
    route('/status', {
      GET: ctx => {
        sendJson(ctx.res, 200, {
          id: replica.id,
          listen: cluster.listenAddrs(),
          http: o.http,
          peers: cluster.peers(),
          members: memberList(o, false),
          counters: replica.counters.keys,
          uptimeSec: Math.round((Date.now() - o.startedAt) / 1000)
        })
      }
    }),
    route('/health', { GET: ctx => { sendText(ctx.res, 200, 'ok') } }),
    route('/openapi.json', { GET: ctx => { sendJson(ctx.res, 200, openapi) } }),
    route('/metrics', {
      GET: async ctx => {
        metrics.counters.set(replica.counters.keys)
        metrics.members.set(replica.members.size)
        const text = await renderMetrics()
        ctx.res.writeHead(200, { 'Content-Type': registry.contentType })
        ctx.res.end(text)
      }
    })
  ]
}

/** Members as the API shows them; `withContribution` scans every counter (O(counters)). */
function memberList (o: ApiOptions, withContribution: boolean): unknown[] {
  const contribution = new Map<string, bigint>()
  if (withContribution) {
    for (const c of o.replica.counters.byName.values()) {
      c.forEach((n: bigint, id: string) => contribution.set(id, (contribution.get(id) ?? 0n) + n))
    }
  }
  return [...o.replica.members.values()].map(m => ({
    id: m.id,
    self: m.id === o.replica.id,
    addrs: m.id === o.replica.id ? o.cluster.listenAddrs() : m.addrs,
    connected: m.id === o.replica.id || o.cluster.isConnected(m.id),
    lastSeen: m.lastSeen > 0 ? new Date(m.id === o.replica.id ? Date.now() : m.lastSeen).toISOString() : null,
    retired: isRetired(m),
    ...(withContribution ? { contribution: contribution.get(m.id) ?? 0n } : {})
  }))
}
