// Sections 2 and 4: a 3-node cluster under a fixed increment rate.
import type { Cluster, CountdNode } from '../cluster.js'
import type { LoadJob, LoadResult, ReqSpec } from './loadgen.js'
import type { Ctx, Curve, Row, SectionResult } from './types.js'
import { waitWritable, getValue, hasSs, median, now, percentile, perProtoRows, postInc, progress, scrape, sleep, startCluster, stopCluster, waitPeers, wirePerUnit, wireSnapshot } from './util.js'

const RATE = 2000

/** One job per node, the rate split evenly over the nodes. */
function rateJobs (nodes: CountdNode[], durationSec: number, req: (i: number) => ReqSpec, rate: number | undefined, connections = 25): LoadJob[] {
  return nodes.map((n, i) => ({
    url: n.url,
    connections,
    durationSec,
    overallRate: rate === undefined ? undefined : Math.floor(rate / nodes.length) + (i < rate % nodes.length ? 1 : 0),
    req: req(i)
  }))
}

/** A 3-node cluster, every node with 2 peers and writable (sections 2, 4 and 10). */
export async function cluster3 (): Promise<Cluster> {
  progress('starting a 3-node cluster')
  const c = await startCluster(3)
  await waitPeers(c.nodes, 2)
  for (const n of c.nodes) await waitWritable(n)
  return c
}

const PROBE_TIMEOUT_MS = 5000
/** Concurrent probe loops (more samples when the lag is long). */
const PROBERS = 2

/**
 * Probe loop: increment a fresh probe counter on one node (round robin),
 * then poll the two others (1 ms apart) until they show it. Lag = first
 * visible there - ack received here.
 */
async function probe (nodes: CountdNode[], until: number, tag: string, offset: number): Promise<{ lags: number[], lost: number }> {
  const lags: number[] = []
  let lost = 0
  await sleep(offset * 7)
  for (let i = offset; now() < until; i++) {
    const origin = nodes[i % nodes.length]
    const name = `lag-${tag}-${i}`
    await postInc(origin.url, name)
    const tAck = now()
    await Promise.all(nodes.filter(n => n !== origin).map(async other => {
      for (;;) {
        if (await getValue(other.url, name) >= 1n) { lags.push(now() - tAck); return }
        if (now() - tAck > PROBE_TIMEOUT_MS) { lost++; return }
        await sleep(1)
      }
    }))
    await sleep(Math.random() * 10)
  }
  return { lags, lost }
}

/** Sum of countd_replication_lag_seconds buckets over the nodes: le (s) -> cumulative count. */
async function lagBuckets (nodes: CountdNode[]): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const n of nodes) {
    for (const [k, v] of await scrape(n.url)) {
      const m = /^countd_replication_lag_seconds_bucket\{le="([^"]+)"\}$/.exec(k)
      if (m === null) continue
      const le = m[1] === '+Inf' ? Infinity : Number(m[1])
      out.set(le, (out.get(le) ?? 0) + v)
    }
  }
  return out
}

/** Percentile from cumulative bucket counts: the upper bound of the bucket it falls in (ms). */
function bucketPercentile (before: Map<number, number>, after: Map<number, number>, p: number): { ms: number, n: number } {
  const les = [...after.keys()].sort((a, b) => a - b)
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0)
  if (total <= 0) return { ms: NaN, n: 0 }
  for (const le of les) {
    if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= (p / 100) * total) return { ms: le * 1000, n: total }
  }
  return { ms: Infinity, n: total }
}

export async function replicationLag (ctx: Ctx): Promise<SectionResult> {
  const durationSec = ctx.quick ? 4 : 15
  const maxSec = ctx.quick ? 2 : 10
  const c = await cluster3()
  const S = '2 cluster of 3'
  try {
    const runs: Array<{ p50: number, p99: number, max: number, probes: number, lost: number, rate: number, lags: number[], hist50: number, hist99: number, histN: number }> = []
    for (let r = 0; r < ctx.repeats; r++) {
      progress(`run ${r + 1}/${ctx.repeats}: ${RATE} inc/s over 3 nodes for ${durationSec} s, probing lag`)
      const load = ctx.load.run(...rateJobs(c.nodes, durationSec, () => ({ kind: 'incRandom', prefix: `s2-${r}-`, pool: 100000 }), RATE))
      await sleep(700) // let the rate settle
      const h0 = await lagBuckets(c.nodes)
      const until = now() + (durationSec - 1.2) * 1000
      const probes = await Promise.all(Array.from({ length: PROBERS }, async (_, k) => await probe(c.nodes, until, `${r}-${k}`, k)))
      const h1 = await lagBuckets(c.nodes)
      const lags = probes.flatMap(p => p.lags)
      const lost = probes.reduce((s, p) => s + p.lost, 0)
      const res = await load
      const h50 = bucketPercentile(h0, h1, 50)
      const h99 = bucketPercentile(h0, h1, 99)
      const rate = res.reduce((s, x) => s + x.ok, 0) / median(res.map(x => x.durationSec))
      const run = { p50: percentile(lags, 50), p99: percentile(lags, 99), max: Math.max(...lags), probes: lags.length, lost, rate, lags, hist50: h50.ms, hist99: h99.ms, histN: h99.n }
      progress(`  ${lags.length} lag samples: p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms, max ${run.max.toFixed(1)} ms, lost ${lost}; load ${Math.round(rate)} inc/s; countd's own histogram (${h99.n} messages): p50 <= ${h50.ms} ms, p99 <= ${h99.ms} ms`)
      runs.push(run)
    }
    const maxRuns: LoadResult[][] = []
    for (let r = 0; r < ctx.repeats; r++) {
      progress(`run ${r + 1}/${ctx.repeats}: cluster-wide max throughput (3 x 17 connections, ${maxSec} s)`)
      const res = await ctx.load.run(...rateJobs(c.nodes, maxSec, () => ({ kind: 'incRandom', prefix: `s2max-${r}-`, pool: 100000 }), undefined, 17))
      progress(`  ${Math.round(res.reduce((s, x) => s + x.rps, 0))} inc/s`)
      maxRuns.push(res)
    }
    const totals = maxRuns.map(res => res.reduce((s, x) => s + x.rps, 0))
    const allLags = runs.flatMap(r => r.lags)
    const rows: Row[] = [
      { section: S, metric: `replication lag p50 @ ${RATE} inc/s`, value: median(runs.map(r => r.p50)), unit: 'ms', runs: runs.map(r => r.p50) },
      { section: S, metric: `replication lag p99 @ ${RATE} inc/s`, value: median(runs.map(r => r.p99)), unit: 'ms', target: { op: '<', value: 50 }, runs: runs.map(r => r.p99) },
      { section: S, metric: `replication lag max @ ${RATE} inc/s`, value: median(runs.map(r => r.max)), unit: 'ms', runs: runs.map(r => r.max) },
      { section: S, metric: 'lag samples per run (ack on A -> visible on B)', value: median(runs.map(r => r.probes)), unit: 'samples', note: `not seen within ${PROBE_TIMEOUT_MS} ms: ${runs.reduce((s, r) => s + r.lost, 0)}` },
      { section: S, metric: 'countd_replication_lag_seconds p50 (bucket bound)', value: median(runs.map(r => r.hist50)), unit: 'ms', runs: runs.map(r => r.hist50), note: `~${Math.round(median(runs.map(r => r.histN)))} gossip messages/run` },
      { section: S, metric: 'countd_replication_lag_seconds p99 (bucket bound)', value: median(runs.map(r => r.hist99)), unit: 'ms', runs: runs.map(r => r.hist99) },
      { section: S, metric: 'achieved background load', value: median(runs.map(r => r.rate)), unit: 'inc/s' },
      { section: S, metric: 'cluster-wide max throughput (3 nodes)', value: median(totals), unit: 'inc/s', runs: totals },
      { section: S, metric: 'max-throughput latency p99 (worst node)', value: median(maxRuns.map(res => Math.max(...res.map(x => x.latency.p99)))), unit: 'ms' }
    ]
    const ps = [1, 2.5, 10, 25, 50, 75, 90, 97.5, 99, 99.9, 99.99]
    const curve: Curve = { label: `replication lag @ ${RATE} inc/s (all runs, n=${allLags.length})`, points: ps.filter(p => p <= 100 - 100 / allLags.length || p <= 99).map(p => [p, percentile(allLags, p)]) }
    return {
      id: 2,
      title: 'Replication lag and throughput, 3 nodes',
      method: `3 countd nodes; autocannon (separate process) sends ${RATE} inc/s (overallRate, split evenly, 25 connections per node so that the rate holds up to ~37 ms latency) to random names from a pool of 100,000. ` +
        `Meanwhile ${PROBERS} probe loops in the bench each increment a fresh probe counter on one node (round robin), take the time the ack arrives, and poll GET /counter/:name/value on the two other nodes every ~1 ms until they show it; ` +
        `lag = first visible - ack (one sample per other node). Cross-check without probe overhead: countd's own histogram countd_replication_lag_seconds (origin publish -> received, i.e. without the wait for the gossip batch timer; every gossiped delta during the probe window, summed over the nodes; resolution = its bucket bounds). ${durationSec} s per run. Max throughput: 17 connections per node, no rate limit, ${maxSec} s.`,
      rows,
      curves: [curve],
      raw: { lagRuns: runs.map(({ lags, ...rest }) => rest), maxRuns }
    }
  } finally {
    await stopCluster(c)
  }
}

export async function wireBytes (ctx: Ctx): Promise<SectionResult> {
  const durationSec = ctx.quick ? 3 : 10
  const c = await cluster3()
  const S = '4 bytes on the wire'
  const ss = hasSs()
  try {
    const variants: Array<{ key: string, label: string, req: (r: number, i: number) => ReqSpec }> = [
      { key: 'random', label: 'random names (pool 100k)', req: r => ({ kind: 'incRandom', prefix: `s4-${r}-`, pool: 100000 }) },
      { key: 'hot', label: 'one hot counter per node', req: (r, i) => ({ kind: 'inc', name: `s4hot-${r}-${i}` }) }
    ]
    const out: Record<string, Array<{ tcp: number, libp2p: number, incs: number, rate: number, perProto: Record<string, number> }>> = { random: [], hot: [] }
    for (let r = 0; r < ctx.repeats; r++) {
      for (const v of variants) {
        progress(`run ${r + 1}/${ctx.repeats}: ${v.label}, ${RATE} inc/s for ${durationSec} s`)
        await sleep(300)
        const a = await wireSnapshot(c.nodes, 'countd_increments_total', ss)
        const res = await ctx.load.run(...rateJobs(c.nodes, durationSec, i => v.req(r, i), RATE))
        await sleep(300) // the last gossip batch
        const b = await wireSnapshot(c.nodes, 'countd_increments_total', ss)
        const { units: incs, tcp, libp2p, perProto } = wirePerUnit(a, b, res.reduce((s, x) => s + x.ok, 0))
        const rate = res.reduce((s, x) => s + x.ok, 0) / median(res.map(x => x.durationSec))
        const x = { tcp, libp2p, incs, rate, perProto }
        progress(`  ${incs} increments (${Math.round(rate)}/s): TCP ${x.tcp.toFixed(1)} B/inc, libp2p streams ${x.libp2p.toFixed(1)} B/inc`)
        out[v.key].push(x)
      }
    }
    const rows: Row[] = []
    for (const v of variants) {
      const xs = out[v.key]
      rows.push({ section: S, metric: `TCP payload bytes per inc, ${v.label}`, value: median(xs.map(x => x.tcp)), unit: 'B/inc', target: { op: '<=', value: 40 }, runs: xs.map(x => x.tcp), note: ss ? undefined : 'ss not available' })
      rows.push({ section: S, metric: `libp2p stream bytes per inc, ${v.label}`, value: median(xs.map(x => x.libp2p)), unit: 'B/inc', target: { op: '<=', value: 40 }, runs: xs.map(x => x.libp2p) })
      rows.push({ section: S, metric: `  achieved rate, ${v.label}`, value: median(xs.map(x => x.rate)), unit: 'inc/s', runs: xs.map(x => x.rate) })
      rows.push(...perProtoRows(S, xs, 'B/inc'))
    }
    return {
      id: 4,
      title: 'Bytes on the wire per increment',
      method: `3 countd nodes, ${RATE} inc/s for ${durationSec} s per run (autocannon, split evenly over the nodes). Bytes sent by all nodes during the window, divided by the increments acked (countd_increments_total). ` +
        'TCP payload = sum of bytes_sent from `ss -tin` over every socket on the nodes\' p2p ports (both ends counted once each: includes noise + yamux framing, excludes IP/TCP headers). ' +
        'libp2p stream bytes = libp2p_data_transfer_bytes_total{protocol="global sent"} from /metrics (application bytes on streams, before yamux/noise). ' +
        'Includes idle traffic (gossipsub heartbeats, periodic anti-entropy). Random names: nearly every increment touches a different counter; hot: per-node deltas of one counter collapse within a gossip batch.',
      rows,
      raw: out
    }
  } finally {
    await stopCluster(c)
  }
}
