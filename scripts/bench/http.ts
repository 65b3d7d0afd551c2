// Sections 1 and 6: one countd node against the bare node:http baseline,
// same load generator, alternating within each run.
import { join } from 'node:path'
import type { LoadResult, ReqSpec } from './loadgen.js'
import { Baseline } from './procs.js'
import { curveFromAutocannon, type Ctx, type SectionResult, type Row } from './types.js'
import { makeNode, median, progress, scrape, stopNode, tempDir, removeDir } from './util.js'

const CONNECTIONS = 50

interface Pair { baseline: LoadResult, countd: LoadResult, ratio: number }

async function compare (ctx: Ctx, tag: string, reqFor: (run: number, server: 'baseline' | 'countd') => ReqSpec, scale: number, durationSec: number): Promise<{ pairs: Pair[], commit: { batches: number, incs: number } }> {
  const baseline = await Baseline.start()
  const dir = tempDir(tag)
  const node = await makeNode(tag, join(dir, 'n1'))
  try {
    await node.start()
    progress('warm-up (1 s each)')
    await ctx.load.run({ url: baseline.url, connections: CONNECTIONS, durationSec: 1, req: reqFor(-1, 'baseline') })
    await ctx.load.run({ url: node.url, connections: CONNECTIONS, durationSec: 1, req: reqFor(-1, 'countd') })
    const m0 = await scrape(node.url)
    const pairs: Pair[] = []
    for (let r = 0; r < ctx.repeats; r++) {
      // Alternate the order so neither side always runs on a warmer machine.
      const order: Array<'baseline' | 'countd'> = r % 2 === 0 ? ['baseline', 'countd'] : ['countd', 'baseline']
      const res: Partial<Record<'baseline' | 'countd', LoadResult>> = {}
      for (const who of order) {
        progress(`run ${r + 1}/${ctx.repeats}: ${who}, ${CONNECTIONS} connections, ${durationSec} s`)
        const [out] = await ctx.load.run({ url: who === 'baseline' ? baseline.url : node.url, connections: CONNECTIONS, durationSec, req: reqFor(r, who) })
        if (out.non2xx + out.errors + out.timeouts > 0) progress(`  ${who}: ${out.non2xx} non-2xx, ${out.errors} errors, ${out.timeouts} timeouts`)
        res[who] = out
      }
      const pair = { baseline: res.baseline!, countd: res.countd!, ratio: res.countd!.rps / res.baseline!.rps }
      progress(`  countd ${fmt(pair.countd.rps * scale)}/s, baseline ${fmt(pair.baseline.rps * scale)}/s, ratio ${(pair.ratio * 100).toFixed(1)}%`)
      pairs.push(pair)
    }
    const m1 = await scrape(node.url)
    const d = (k: string): number => (m1.get(k) ?? NaN) - (m0.get(k) ?? NaN)
    return { pairs, commit: { batches: d('countd_commit_batch_size_count'), incs: d('countd_commit_batch_size_sum') } }
  } finally {
    baseline.close()
    await stopNode(node)
    removeDir(dir)
  }
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')

function pick (pairs: Pair[], who: 'baseline' | 'countd', f: (r: LoadResult) => number): number[] { return pairs.map(p => f(p[who])) }

/** The run whose countd throughput is the median one (for the latency curves). */
function medianPair (pairs: Pair[]): Pair {
  const sorted = [...pairs].sort((a, b) => a.countd.rps - b.countd.rps)
  return sorted[(sorted.length - 1) >> 1]
}

export async function singleIncrements (ctx: Ctx): Promise<SectionResult> {
  const durationSec = ctx.quick ? 3 : 10
  const { pairs, commit } = await compare(ctx, 's1', (r) => ({ kind: 'inc', name: `s1-hot-${r < 0 ? 'warm' : r}` }), 1, durationSec)
  const S = '1 single-node HTTP inc'
  const rows: Row[] = [
    { section: S, metric: 'countd increments/s (durable acks)', value: median(pick(pairs, 'countd', r => r.rps)), unit: 'req/s', runs: pick(pairs, 'countd', r => r.rps) },
    { section: S, metric: 'countd latency p50', value: median(pick(pairs, 'countd', r => r.latency.p50)), unit: 'ms', runs: pick(pairs, 'countd', r => r.latency.p50) },
    { section: S, metric: 'countd latency p99', value: median(pick(pairs, 'countd', r => r.latency.p99)), unit: 'ms', runs: pick(pairs, 'countd', r => r.latency.p99) },
    { section: S, metric: 'baseline node:http in-memory req/s', value: median(pick(pairs, 'baseline', r => r.rps)), unit: 'req/s', runs: pick(pairs, 'baseline', r => r.rps) },
    { section: S, metric: 'baseline latency p50', value: median(pick(pairs, 'baseline', r => r.latency.p50)), unit: 'ms' },
    { section: S, metric: 'baseline latency p99', value: median(pick(pairs, 'baseline', r => r.latency.p99)), unit: 'ms' },
    { section: S, metric: 'ratio countd / baseline (per run)', value: median(pairs.map(p => p.ratio)), unit: 'ratio', target: { op: '>=', value: 0.70 }, runs: pairs.map(p => p.ratio) }
  ]
  if (Number.isFinite(commit.batches) && commit.batches > 0) {
    rows.push({ section: S, metric: 'mean increments per fsync batch (countd metric)', value: commit.incs / commit.batches, unit: 'inc' })
  }
  const mp = medianPair(pairs)
  return {
    id: 1,
    title: 'Single-node increments over HTTP',
    method: `autocannon (separate process) with ${CONNECTIONS} keep-alive connections, POST /counter/<one hot name> body "1", ${durationSec} s per measurement; ` +
      'each run measures the bare node:http in-memory baseline server (child process) and countd back to back (order alternating); the ratio is countd/baseline within a run; figures are medians over runs. Latency resolution is 1 ms (autocannon).',
    rows,
    curves: [curveFromAutocannon('countd POST /counter (durable)', mp.countd.latency), curveFromAutocannon('baseline node:http in-memory', mp.baseline.latency)],
    raw: pairs
  }
}

/** The rows of a section whose requests each carry `per` writes: rates, latency, baseline and ratio. */
function perRequestRows (section: string, pairs: Pair[], per: number, names: { countd: string, latency: string, baseline: string, unit: string, target: number }): Row[] {
  const rate = (who: 'countd' | 'baseline'): number[] => pick(pairs, who, r => r.rps * per)
  return [
    { section, metric: names.countd, value: median(rate('countd')), unit: names.unit, target: { op: '>=', value: names.target }, runs: rate('countd') },
    { section, metric: `${names.latency} p50`, value: median(pick(pairs, 'countd', r => r.latency.p50)), unit: 'ms' },
    { section, metric: `${names.latency} p99`, value: median(pick(pairs, 'countd', r => r.latency.p99)), unit: 'ms' },
    { section, metric: names.baseline, value: median(rate('baseline')), unit: names.unit, runs: rate('baseline') },
    { section, metric: 'ratio countd / baseline (per run)', value: median(pairs.map(p => p.ratio)), unit: 'ratio', runs: pairs.map(p => p.ratio) }
  ]
}

export async function batchIncrements (ctx: Ctx): Promise<SectionResult> {
  const PER = 100
  const spec = (r: number): ReqSpec => ({ kind: 'batch', prefix: `s6-${r < 0 ? 'w' : r}-`, pool: 100000, perReq: PER, bodies: 200 })
  const durationSec = ctx.quick ? 2 : 10
  const { pairs } = await compare(ctx, 's6', spec, PER, durationSec)
  const S = '6 batch POST /counters'
  const rows = perRequestRows(S, pairs, PER, {
    countd: `countd increments/s (${PER} per request)`, latency: 'countd batch latency', baseline: 'baseline increments/s (same bodies)', unit: 'inc/s', target: 200000
  })
  const mp = medianPair(pairs)
  return {
    id: 6,
    title: 'Batch increments',
    method: `autocannon (separate process), ${CONNECTIONS} connections, POST /counters with a JSON object of ${PER} distinct names (+1 each; 200 pre-built bodies drawn at random, names from a pool of 100,000), ${durationSec} s per measurement; baseline = the same bodies against the node:http in-memory server.`,
    rows,
    curves: [curveFromAutocannon(`countd POST /counters (${PER}/req)`, mp.countd.latency)],
    raw: pairs
  }
}

export async function itemIngest (ctx: Ctx): Promise<SectionResult> {
  const PER = 1000
  const spec = (r: number): ReqSpec => ({ kind: 'items', prefix: `s7-${r < 0 ? 'w' : r}-`, tenants: 1000, perReq: PER, bodies: 0 })
  const durationSec = ctx.quick ? 3 : 10
  const { pairs } = await compare(ctx, 's7', spec, PER, durationSec)
  const S = '7 items POST /items'
  const rows = perRequestRows(S, pairs, PER, {
    countd: `countd items/s (${PER} per request, durable)`, latency: 'countd request latency', baseline: 'baseline items/s (same bodies, Set per tenant)', unit: 'item/s', target: 150000
  })
  return {
    id: 7,
    title: 'Item ingest',
    method: `autocannon (separate process), ${CONNECTIONS} connections, POST /items with a JSON array of ${PER} new {id, tenant} pairs over 1,000 tenants, ${durationSec} s per measurement; baseline = the same bodies against the node:http in-memory server (a JS Set per tenant, no durability).`,
    rows,
    raw: pairs
  }
}

export async function idSection (ctx: Ctx): Promise<SectionResult> {
  const durationSec = ctx.quick ? 3 : 10
  const single = await compare(ctx, 's8', () => ({ kind: 'get', path: '/ids/next' }), 1, durationSec)
  const batch = await compare(ctx, 's8b', () => ({ kind: 'get', path: '/ids?count=10000' }), 10000, durationSec)
  const S = '8 IDs'
  const rows: Row[] = [
    { section: S, metric: 'countd GET /ids/next req/s', value: median(pick(single.pairs, 'countd', r => r.rps)), unit: 'req/s', runs: pick(single.pairs, 'countd', r => r.rps) },
    { section: S, metric: 'baseline GET /ids/next req/s (a counter in memory)', value: median(pick(single.pairs, 'baseline', r => r.rps)), unit: 'req/s' },
    { section: S, metric: 'ratio countd / baseline, /ids/next (per run)', value: median(single.pairs.map(p => p.ratio)), unit: 'ratio', target: { op: '>=', value: 0.9 }, runs: single.pairs.map(p => p.ratio) },
    { section: S, metric: 'countd IDs/s with GET /ids?count=10000', value: median(pick(batch.pairs, 'countd', r => r.rps * 10000)), unit: 'id/s', target: { op: '>=', value: 2000000 }, runs: pick(batch.pairs, 'countd', r => r.rps * 10000) }
  ]
  return {
    id: 8,
    title: 'IDs',
    method: `autocannon, ${CONNECTIONS} connections, ${durationSec} s per measurement: GET /ids/next (one ID as text) against the baseline server's in-memory counter, and GET /ids?count=10000 (JSON of decimal strings) on countd alone (the layout allows 4,096 IDs per ms per node).`,
    rows
  }
}
