// Cluster and node routes: bootstrap, members, status, health, metrics.
import type { ApiDeps } from '../deps.js'
import { type RouteDecl, json, text, none, error, BODY_LIMIT } from '../route.js'
import { readBody, parseJson } from '../body.js'
import { HttpError, badRequest } from '../errors.js'
import { sendJson, sendNoContent, sendText } from '../reply.js'
import { pageOf, pageParams, nextSchema } from '../query.js'
import { pageOfSorted } from '../../sorted-names.js'
import { isRetired } from '../../membership.js'
import { registry, metrics, renderMetrics } from '../../metrics.js'

/** Counters scanned between yields to the event loop when summing contributions. */
const SCAN_SLICE = 20000

export function clusterRoutes (d: ApiDeps): RouteDecl[] {
  return [{
    method: 'POST',
    path: '/config',
    summary: 'Connect to actors and add them as peers (challenge-compatible bootstrap)',
    body: { limit: BODY_LIMIT, required: true, content: { 'application/json': { type: 'object', required: ['actors'], properties: { actors: { type: 'array', items: { type: 'string' } } } } } },
    answers: { 204: none('dialed (unreachable actors keep being retried)'), 400: error('bad body or address'), 413: error('body over 64 KiB') },
    handle: async ctx => {
      const body = parseJson(await readBody(ctx.req, BODY_LIMIT)) as { actors?: unknown } | null
      const actors = body?.actors
      if (!Array.isArray(actors) || !actors.every(a => typeof a === 'string' && a.length > 0 && a.length < 512)) {
        throw badRequest('body must be {"actors": ["host:port" | multiaddr, ...]}')
      }
      try {
        d.cluster.checkAddrs(actors)
      } catch (err: any) {
        throw badRequest(err.message)
      }
      await d.cluster.connect(actors)
      sendNoContent(ctx.res)
    }
  }, {
    method: 'GET',
    path: '/members',
    summary: 'Members with addresses, connectivity, last seen and contribution, paged by id',
    query: pageParams,
    answers: {
      200: json('one page', { type: 'object', required: ['members', 'next'], properties: { members: { type: 'array', items: { type: 'object' } }, next: nextSchema } }),
      400: error('bad limit, prefix or after')
    },
    handle: async ctx => {
      const ids = [...d.replica.members.values()].map(m => m.id).sort()
      const page = pageOfSorted(ids, pageOf(ctx.query))
      const contribution = await contributions(d, new Set(page.names))
      sendJson(ctx.res, 200, { members: memberViews(d, page.names, contribution), next: page.next })
    }
  }, {
    method: 'DELETE',
    path: '/members/:id',
    summary: 'Retire a member that is gone for good (its increments stay counted)',
    params: { id: { schema: { type: 'string' } } },
    answers: { 204: none('retired'), 404: error('no such member'), 409: error('a node cannot retire itself') },
    handle: ctx => {
      const id = ctx.params.id
      if (id === d.replica.id) throw new HttpError(409, 'a node cannot retire itself')
      if (!d.replica.members.retire(id, Date.now())) throw new HttpError(404, `no member ${id}`)
      sendNoContent(ctx.res)
    }
  }, {
    method: 'GET',
    path: '/status',
    summary: 'Node id, addresses, peers, members, number of counters, uptime',
    answers: { 200: json('status', { type: 'object', required: ['id', 'listen', 'http', 'peers', 'members', 'counters', 'uptimeSec'] }) },
    handle: ctx => {
      const ids = [...d.replica.members.values()].map(m => m.id)
      sendJson(ctx.res, 200, {
        id: d.replica.id,
        listen: d.cluster.listenAddrs(),
        http: d.http,
        peers: d.cluster.peers(),
        members: memberViews(d, ids),
        counters: d.replica.counters.keys,
        tenants: d.replica.items.keys,
        uptimeSec: Math.round((Date.now() - d.startedAt) / 1000)
      })
    }
  }, {
    method: 'GET',
    path: '/health',
    summary: 'Liveness (no token needed)',
    auth: false,
    answers: { 200: text('ok') },
    handle: ctx => { sendText(ctx.res, 200, 'ok') }
  }, {
    method: 'GET',
    path: '/metrics',
    summary: 'Prometheus metrics',
    answers: { 200: text('Prometheus text format') },
    handle: async ctx => {
      metrics.counters.set(d.replica.counters.keys)
      metrics.members.set(d.replica.members.size)
      metrics.tenants.set(d.replica.items.keys)
      metrics.items.set(d.replica.items.items)
      metrics.itemIndexBytes.set(d.replica.items.index.bytes)
      const body = await renderMetrics()
      ctx.res.writeHead(200, { 'Content-Type': registry.contentType })
      ctx.res.end(body)
    }
  }]
}

/**
 * Each listed member's total over every counter. A node may hold millions
 * of counters, so the scan yields to the event loop every SCAN_SLICE of them.
 */
async function contributions (d: ApiDeps, ids: Set<string>): Promise<Map<string, bigint>> {
  const sums = new Map<string, bigint>()
  const counters = d.replica.counters
  for (let slot = 0; slot < counters.keys; slot++) {
    counters.forEachAt(slot, (n, id) => { if (ids.has(id)) sums.set(id, (sums.get(id) ?? 0n) + n) })
    if ((slot + 1) % SCAN_SLICE === 0) await new Promise(resolve => setImmediate(resolve))
  }
  return sums
}

function memberViews (d: ApiDeps, ids: string[], contribution?: Map<string, bigint>): unknown[] {
  const out: unknown[] = []
  for (const id of ids) {
    const m = d.replica.members.get(id)
    if (m === undefined) continue
    const self = id === d.replica.id
    out.push({
      id,
      self,
      addrs: self ? d.cluster.listenAddrs() : m.addrs,
      connected: self || d.cluster.isConnected(id),
      lastSeen: m.lastSeen > 0 ? new Date(self ? Date.now() : m.lastSeen).toISOString() : null,
      retired: isRetired(m),
      ...(contribution !== undefined ? { contribution: contribution.get(id) ?? 0n } : {})
    })
  }
  return out
}
