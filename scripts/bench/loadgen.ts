// Load generator child process: runs autocannon jobs on request (over the
// IPC channel) so that the client does not share an event loop with the
// servers or with the bench's own probes.
//   parent -> child: { id, jobs: LoadJob[] }      (jobs of one message run concurrently)
//   child -> parent: { id, results: LoadResult[] } or { id, error }
import autocannon from 'autocannon'
import type { AutocannonRequest } from 'autocannon'

export type ReqSpec =
  | { kind: 'inc', name: string }
  | { kind: 'incRandom', prefix: string, pool: number }
  | { kind: 'batch', prefix: string, pool: number, perReq: number, bodies: number }
  /** POST /items: JSON arrays of perReq {id, tenant}; ids fresh per body (counter `start` upward), so nearly every item is new. */
  | { kind: 'items', prefix: string, tenants: number, perReq: number, bodies: number }
  | { kind: 'get', path: string }

export interface LoadJob {
  url: string
  connections: number
  durationSec: number
  /** Fixed request rate over all connections of this job (default: as fast as possible). */
  overallRate?: number
  req: ReqSpec
}

export interface LoadResult {
  ok: number
  non2xx: number
  errors: number
  timeouts: number
  durationSec: number
  /** 2xx responses per second. */
  rps: number
  /** Latency percentiles in ms, keys like p50, p99, p99_9 (autocannon's names) plus min/max/mean. */
  latency: Record<string, number>
}

function requestsFor (spec: ReqSpec): { method: string, path?: string, body?: string, headers?: Record<string, string>, requests?: AutocannonRequest[] } {
  const text = { 'content-type': 'text/plain' }
  switch (spec.kind) {
    case 'inc':
      return { method: 'POST', path: `/counter/${spec.name}`, body: '1', headers: text }
    case 'incRandom':
      return {
        method: 'POST',
        requests: [{
          method: 'POST',
          path: `/counter/${spec.prefix}0`,
          body: '1',
          headers: text,
          setupRequest: req => ({ ...req, path: `/counter/${spec.prefix}${Math.floor(Math.random() * spec.pool)}` })
        }]
      }
    case 'get':
      return { method: 'GET', path: spec.path }
    case 'items': {
      // Bodies are built on the fly (every request new ids) from one template per tenant mix.
      let n = 0
      const body = (): string => {
        const items: string[] = []
        for (let k = 0; k < spec.perReq; k++, n++) items.push(`{"id":"${spec.prefix}${n}","tenant":"t${n % spec.tenants}"}`)
        return `[${items.join(',')}]`
      }
      const json = { 'content-type': 'application/json' }
      return {
        method: 'POST',
        requests: [{ method: 'POST', path: '/items', body: body(), headers: json, setupRequest: req => ({ ...req, body: body() }) }]
      }
    }
    case 'batch': {
      const bodies: string[] = []
      for (let b = 0; b < spec.bodies; b++) {
        const names = new Set<number>()
        while (names.size < spec.perReq) names.add(Math.floor(Math.random() * spec.pool))
        bodies.push(`{${[...names].map(n => `"${spec.prefix}${n}":1`).join(',')}}`)
      }
      const json = { 'content-type': 'application/json' }
      return {
        method: 'POST',
        requests: [{
          method: 'POST',
          path: '/counters',
          body: bodies[0],
          headers: json,
          setupRequest: req => ({ ...req, body: bodies[Math.floor(Math.random() * bodies.length)] })
        }]
      }
    }
  }
}

async function runJob (job: LoadJob): Promise<LoadResult> {
  const r = requestsFor(job.req)
  const base = job.url.replace(/\/$/, '')
  const res = await autocannon({
    url: r.path !== undefined ? `${base}${r.path}` : base,
    method: r.method,
    body: r.body,
    headers: r.headers,
    requests: r.requests,
    connections: job.connections,
    duration: job.durationSec,
    overallRate: job.overallRate,
    timeout: 10
  })
  const latency: Record<string, number> = {}
  for (const [k, v] of Object.entries(res.latency)) if (typeof v === 'number') latency[k] = v
  return {
    ok: res['2xx'],
    non2xx: res.non2xx,
    errors: res.errors,
    timeouts: res.timeouts,
    durationSec: res.duration,
    rps: res['2xx'] / res.duration,
    latency
  }
}

process.on('message', (msg: { id: number, jobs: LoadJob[] }) => {
  Promise.all(msg.jobs.map(runJob)).then(
    results => process.send!({ id: msg.id, results }),
    (err: Error) => process.send!({ id: msg.id, error: String(err?.stack ?? err) })
  )
})
process.on('disconnect', () => process.exit(0))
process.send!({ ready: true })
