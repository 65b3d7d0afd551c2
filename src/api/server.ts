// The HTTP API on node:http (no framework): routes are declared once
// (src/api/routes/*), matched exactly (router.ts), and documented from the
// same declarations (openapi.ts). See README "HTTP API".
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { tokenMatches, BEARER } from './auth.js'
import type { ApiDeps } from './deps.js'
import type { RouteDecl } from './route.js'
import { json } from './route.js'
import { Router } from './router.js'
import { HttpError, badRequest } from './errors.js'
import { sendError, sendJson } from './reply.js'
import { buildOpenApi } from './openapi.js'
import { answerClientError, answerRaw, trackResponse } from './client-error.js'
import { counterRoutes } from './routes/counters.js'
import { itemRoutes } from './routes/items.js'
import { idRoutes } from './routes/ids.js'
import { clusterRoutes } from './routes/cluster.js'
import { metrics, cachedLabels } from '../metrics.js'

export type { ApiDeps, ApiSettings } from './deps.js'
export { BODY_LIMIT, BATCH_BODY_LIMIT } from './route.js'

/** Every route of the API, in one list. */
export function declareRoutes (d: ApiDeps): RouteDecl[] {
  const routes = [...counterRoutes(d), ...itemRoutes(d), ...idRoutes(d), ...clusterRoutes(d)]
  let doc: unknown
  routes.push({
    method: 'GET',
    path: '/openapi.json',
    summary: 'This document',
    answers: { 200: json('OpenAPI 3 document') },
    handle: ctx => { sendJson(ctx.res, 200, doc ??= buildOpenApi(routes)) }
  })
  return routes
}

export function createApi (d: ApiDeps): Server {
  const router = new Router(declareRoutes(d))
  // requireHostHeader off: node:http's own 400 for a missing Host has no
  // body; dispatch answers it with the JSON error every other error gets.
  const server = createServer({ requireHostHeader: false }, (req, res) => {
    trackResponse(req, res)
    void dispatch(router, d, req, res)
  })
  server.on('clientError', answerClientError)
  // Answers node:http would otherwise send bare (417) or not at all (CONNECT).
  server.on('checkExpectation', (_req, res) => { sendError(res, new HttpError(417, 'only "Expect: 100-continue" is supported')) })
  server.on('connect', (_req, socket) => { answerRaw(socket, 405, 'CONNECT is not supported') })
  server.keepAliveTimeout = 65000
  server.headersTimeout = 66000
  server.requestTimeout = 120000
  return server
}

/** Constant-time bearer token check (hashing first makes lengths equal); reads the current token. */
function authorized (d: ApiDeps, req: IncomingMessage): boolean {
  const token = d.settings.apiToken
  if (token === undefined) return true
  const m = BEARER.exec(req.headers.authorization ?? '')
  return m !== null && tokenMatches(token, m[1])
}

/** An absolute-form target (`GET http://host/path`, RFC 9112 §3.2.2) as its path and query. */
function originForm (target: string): string {
  const m = /^https?:\/\/[^/?#]*/i.exec(target)
  if (m === null) return target
  const rest = target.slice(m[0].length)
  return rest === '' || rest.startsWith('?') ? `/${rest}` : rest
}

/** The query string; a malformed percent-escape is a 400, as in the path (URLSearchParams would put U+FFFD in its place). */
function parseQuery (raw: string): URLSearchParams {
  if (raw.includes('%')) {
    for (const part of raw.split('&')) {
      try { decodeURIComponent(part.replace(/\+/g, ' ')) } catch { throw badRequest('malformed URL encoding in the query') }
    }
  }
  return new URLSearchParams(raw)
}

async function dispatch (router: Router, d: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now()
  let label = 'unknown'
  try {
    // Split the raw target ourselves: URL parsing would resolve "." and
    // ".." segments, which are valid counter names.
    if (req.headers.host === undefined && req.httpVersionMinor >= 1) throw badRequest('missing Host header')
    const target = originForm(req.url ?? '/')
    const q = target.indexOf('?')
    const pathname = q === -1 ? target : target.slice(0, q)
    const query = parseQuery(q === -1 ? '' : target.slice(q + 1))
    // Authenticate before telling anyone which paths exist.
    const found = router.find(pathname)
    const open = found?.pattern.byMethod.get('GET')?.auth === false
    if (!open && !authorized(d, req)) {
      throw new HttpError(401, 'missing or wrong bearer token', {}, { 'WWW-Authenticate': 'Bearer' })
    }
    const match = router.match(req.method ?? 'GET', pathname, found)
    label = match.path
    await match.decl.handle({ req, res, params: match.params, query })
  } catch (err) {
    sendError(res, err)
  } finally {
    requestsOf(label, String(res.statusCode)).inc()
    latencyOf(label).observe((performance.now() - started) / 1000)
  }
}

/** Request metrics, with the label children cached (cachedLabels). */
const requestsOf = cachedLabels((route, status) => metrics.httpRequests.labels(route, status))
const latencyOf = cachedLabels(route => metrics.httpLatency.labels(route))
