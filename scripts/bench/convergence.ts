// Section 3: convergence after a partition heals, 10,000 counters changed on
// each side.
import { join } from 'node:path'
import type { CountdNode } from '../cluster.js'
import type { Ctx, Row, SectionResult } from './types.js'
import { http, scrape, waitWritable, bulkIncrement, getJson, makeNode, median, now, progress, removeDir, sleep, stopNode, tempDir, waitPeers } from './util.js'

const N = 10000

/** Does every node hold exactly `expected` for the names it lists (and all of them)? */
async function agree (nodes: CountdNode[], expected: Map<string, number>): Promise<boolean> {
  const lists = await Promise.all(nodes.map(async n => await allCounters(n.url)))
  for (const list of lists) {
    let found = 0
    for (const { name, value } of list) {
      const want = expected.get(name)
      if (want === undefined) continue
      if (Number(value) !== want) return false
      found++
    }
    if (found !== expected.size) return false
  }
  return true
}

/** Every counter of a node, walking the pages of GET /counters. */
async function allCounters (url: string): Promise<Array<{ name: string, value: number | string }>> {
  const all: Array<{ name: string, value: number | string }> = []
  let after: string | null = null
  do {
    const page = await getJson(`${url}/counters?limit=10000${after !== null ? `&after=${encodeURIComponent(after)}` : ''}`) as { counters: Array<{ name: string, value: number | string }>, next: string | null }
    all.push(...page.counters)
    after = page.next
  } while (after !== null)
  return all
}

/** Entries merged so far from peers (anti-entropy + gossip), NaN without the metrics. */
async function received (n: CountdNode): Promise<number> {
  const m = await scrape(n.url)
  const s = m.get('countd_sync_entries_received_total')
  return s === undefined ? NaN : s + (m.get('countd_gossip_deltas_received_total') ?? 0)
}

/**
 * Time at which every node holds the expected values. Polling the full
 * /counters lists is heavy for the nodes, so while the nodes' own counters
 * of merged entries say there is still work to do (fewer than `want[i]` new
 * on node i), only /metrics is read; the lists are compared once they say done
 * (and on every poll after that, if the lists do not agree yet).
 */
async function converged (nodes: CountdNode[], expected: Map<string, number>, want: number[], timeoutMs = 30000): Promise<number> {
  const base = await Promise.all(nodes.map(received))
  const useMetrics = base.every(Number.isFinite)
  const t0 = now()
  let metricsDone = !useMetrics
  while (now() - t0 < timeoutMs) {
    if (!metricsDone) {
      const got = await Promise.all(nodes.map(received))
      const t = now()
      if (got.every((g, i) => g - base[i] >= want[i])) {
        metricsDone = true
        if (await agree(nodes, expected)) return t
      }
    } else {
      const t = now()
      if (await agree(nodes, expected)) return t
    }
    await sleep(10)
  }
  return NaN
}

/** Like `converged` for one node whose metric baseline was taken before it was paused. */
async function convergedFrom (n: CountdNode, base: number, expected: Map<string, number>, want: number, timeoutMs = 30000): Promise<number> {
  const t0 = now()
  let metricsDone = !Number.isFinite(base)
  while (now() - t0 < timeoutMs) {
    if (!metricsDone) {
      const got = await received(n)
      const t = now()
      if (got - base >= want) {
        metricsDone = true
        if (await agree([n], expected)) return t
      }
    } else {
      const t = now()
      if (await agree([n], expected)) return t
    }
    await sleep(10)
  }
  return NaN
}

interface RunResult { fromReady: number, fromSpawn: number, pauseCatchUp: number, batch: boolean }

async function oneRun (r: number, total: number): Promise<RunResult> {
  const dir = tempDir('s3')
  const a = await makeNode('a', join(dir, 'a'))
  let b: CountdNode | undefined
  try {
    await a.start()
    const nb = await makeNode('b', join(dir, 'b'), [a.hostPort])
    b = nb
    await nb.start()
    await waitPeers([a, nb], 1)
    await waitWritable(a)
    await waitWritable(nb)

    // --- split: a real partition (neither side can see the other's writes) ---
    progress(`run ${r + 1}/${total}: partition (B down), ${N} counters on A`)
    await nb.kill('SIGKILL')
    const expected = new Map<string, number>()
    const sideA: Array<[string, number]> = []
    for (let i = 0; i < N; i++) sideA.push([`p${i}`, 1 + (i % 3)])
    const batch = await bulkIncrement(a.url, sideA)
    progress(`run ${r + 1}/${total}: A down, B up alone, ${N} counters on B (half of them also changed on A)`)
    await a.kill('SIGKILL')
    await nb.start()
    const sideB: Array<[string, number]> = []
    for (let i = N / 2; i < N + N / 2; i++) sideB.push([`p${i}`, 10 + (i % 5)])
    await bulkIncrement(nb.url, sideB)
    for (const [k, v] of [...sideA, ...sideB]) expected.set(k, (expected.get(k) ?? 0) + v)
    if (await agree([a, nb].filter(n => n.running), expected)) throw new Error('B already agrees before the heal: the partition did not hold')
    progress(`run ${r + 1}/${total}: heal (A restarts and redials B), waiting for agreement`)
    const tSpawn = now()
    await a.start()
    const tReady = now()
    // A (fresh process) must merge B's 10,000 entries, B must merge A's 10,000.
    const tAgree = await converged([a, nb], expected, [N, N])
    const res: RunResult = { fromReady: tAgree - tReady, fromSpawn: tAgree - tSpawn, pauseCatchUp: NaN, batch }
    progress(`  converged ${res.fromReady.toFixed(0)} ms after A was ready (${res.fromSpawn.toFixed(0)} ms after spawn)`)

    // --- pause: SIGSTOP B while A takes 10k new counters, then SIGCONT ---
    await waitPeers([a, nb], 1)
    progress(`run ${r + 1}/${total}: SIGSTOP B, ${N} more counters on A, SIGCONT B`)
    const base = await received(nb).catch(() => NaN)
    nb.pause()
    if (await http('GET', `${nb.url}/health`, undefined, {}, 300).then(() => true, () => false)) throw new Error('B still answers after SIGSTOP')
    const sideA2: Array<[string, number]> = []
    for (let i = 0; i < N; i++) sideA2.push([`q${i}`, 1 + (i % 7)])
    await bulkIncrement(a.url, sideA2)
    const expected2 = new Map(sideA2)
    await sleep(500)
    const tCont = now()
    nb.resume()
    res.pauseCatchUp = await convergedFrom(nb, base, expected2, N) - tCont
    progress(`  paused node caught up ${res.pauseCatchUp.toFixed(0)} ms after SIGCONT`)
    return res
  } finally {
    b?.resume()
    await stopNode(a)
    if (b !== undefined) await stopNode(b)
    removeDir(dir)
  }
}

export async function convergence (ctx: Ctx): Promise<SectionResult> {
  const runs: RunResult[] = []
  for (let r = 0; r < ctx.repeats; r++) runs.push(await oneRun(r, ctx.repeats))
  const S = '3 partition heal'
  const rows: Row[] = [
    { section: S, metric: `converge after heal, ${N} counters changed per side (from A ready)`, value: median(runs.map(r => r.fromReady)), unit: 'ms', target: { op: '<', value: 1000 }, runs: runs.map(r => r.fromReady) },
    { section: S, metric: '  same, from A\'s process spawn (incl. its restart)', value: median(runs.map(r => r.fromSpawn)), unit: 'ms', runs: runs.map(r => r.fromSpawn) },
    { section: S, metric: `paused node (SIGSTOP) catch-up, ${N} counters, from SIGCONT`, value: median(runs.map(r => r.pauseCatchUp)), unit: 'ms', target: { op: '<', value: 1000 }, runs: runs.map(r => r.pauseCatchUp) }
  ]
  return {
    id: 3,
    title: 'Convergence after a partition heals',
    method: 'Two nodes A and B (fresh data dirs per run), joined. Partition without network namespaces: B is killed (SIGKILL); A takes +N on 10,000 counters p0..p9999; ' +
      'A is killed; B restarts alone (its only peer is down) and takes +N on 10,000 counters p5000..p14999 (5,000 of them also changed on A, so these need both replicas\' entries); ' +
      'heal = A restarts (it redials B from its persisted members). Convergence time = A\'s ready line until GET /counters on both nodes shows the exact expected value for all 15,000 names (to keep polling light, /metrics is polled every ~10 ms until each node has merged 10,000 entries from the other — countd_sync_entries_received_total + countd_gossip_deltas_received_total — and the time is taken when that answer arrived, after the full lists were checked to agree; an upper bound by one round trip). ' +
      'Writes go through POST /counters (batch, one durable ack per request). ' +
      'Second figure (the brief\'s SIGSTOP method, one-sided): with both up, B is SIGSTOPped, A takes 10,000 more counters, B is SIGCONTed 0.5 s later; time until B shows them all. ' +
      'Caveat: while B is stopped the kernel still buffers what A sends on the open TCP connection, so this measures the backlog replay plus anti-entropy, not a clean cut.',
    rows,
    raw: runs
  }
}
