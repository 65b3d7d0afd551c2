// Section 5: many distinct counter names on one node; restart; anti-entropy
// between two nodes that differ in 1% of the counters.
import { join } from 'node:path'
import type { CountdNode } from '../cluster.js'
import type { Ctx, Row, SectionResult } from './types.js'
import { bulkIncrement, dirBytes, getJson, getValue, http, makeNode, median, now, progress, removeDir, rssBytes, scrape, sleep, stopNode, tempDir, waitUntil } from './util.js'

const MB = 1024 * 1024
const name = (i: number): string => `s5-${i}`

/** Load names 0..n-1 (+1 each) with batch requests built on the fly (~4,000 names per body, 3 in flight). */
async function loadNames (url: string, n: number): Promise<{ ms: number, batch: boolean }> {
  const t0 = now()
  const PER = 4000
  let next = 0
  let batch = true
  await Promise.all(Array.from({ length: 3 }, async () => {
    while (next < n && batch) {
      const from = next
      next = Math.min(n, next + PER)
      const parts: string[] = []
      for (let i = from; i < next; i++) parts.push(`"${name(i)}":1`)
      const r = await http('POST', `${url}/counters`, `{${parts.join(',')}}`, { 'content-type': 'application/json' }, 120000)
      if (r.status === 404 || r.status === 405) { batch = false; return }
      if (r.status !== 200) throw new Error(`POST /counters: ${r.status} ${r.body.slice(0, 200)}`)
      if ((from / PER) % 25 === 0) progress(`  loaded ${next.toLocaleString('en-US')} / ${n.toLocaleString('en-US')}`)
    }
  }))
  if (!batch) {
    progress('  POST /counters not available: falling back to single POSTs')
    const entries: Array<[string, number]> = []
    for (let i = 0; i < n; i++) entries.push([name(i), 1])
    await bulkIncrement(url, entries)
  }
  return { ms: now() - t0, batch }
}

async function counterCount (n: CountdNode): Promise<number> {
  return (await getJson(`${n.url}/status`) as { counters: number }).counters
}

export async function scale (ctx: Ctx): Promise<SectionResult> {
  const N = ctx.quick ? 100000 : 1000000
  const nice = N.toLocaleString('en-US')
  const dir = tempDir('s5')
  const a = await makeNode('a', join(dir, 'a'))
  let b: CountdNode | undefined
  const S = `5 scale (${nice} names)`
  try {
    await a.start()
    progress(`loading ${nice} distinct names into one node`)
    const load = await loadNames(a.url, N)
    if (await counterCount(a) !== N) throw new Error(`node holds ${await counterCount(a)} counters, expected ${N}`)
    progress(`  ${(N / (load.ms / 1000)).toFixed(0)} names/s`)
    await sleep(2000)
    const rssLoaded = rssBytes(a.proc!.pid!)
    const disk = dirBytes(a.opts.dataDir)

    const restartKill: number[] = []
    const restartTerm: number[] = []
    const rssRestarted: number[] = []
    for (let r = 0; r < ctx.repeats; r++) {
      for (const how of ['SIGKILL', 'SIGTERM'] as const) {
        progress(`restart ${r + 1}/${ctx.repeats} after ${how}`)
        await a.kill(how)
        const t0 = now()
        await a.start(60000)
        const ms = now() - t0
        ;(how === 'SIGKILL' ? restartKill : restartTerm).push(ms)
        progress(`  ready in ${ms.toFixed(0)} ms`)
      }
      if (await getValue(a.url, name(N - 1)) !== 1n) throw new Error('restart lost data')
      await sleep(1000)
      rssRestarted.push(rssBytes(a.proc!.pid!))
    }

    progress(`second node joins; initial anti-entropy of ${nice} counters`)
    b = await makeNode('b', join(dir, 'b'), [a.hostPort])
    const tb = now()
    await b.start(60000)
    const initialSync = await waitUntil(async () => await counterCount(b!) === N, 600000, 200) - tb

    const syncs: number[] = []
    const fromSpawn: number[] = []
    const changedN = Math.round(N / 100)
    for (let r = 0; r < ctx.repeats; r++) {
      progress(`sync ${r + 1}/${ctx.repeats}: B down, ${changedN.toLocaleString('en-US')} counters (1%) change on A, B restarts`)
      await b.kill('SIGKILL')
      const picked = new Set<number>()
      while (picked.size < changedN) picked.add(Math.floor(Math.random() * N))
      const changed = [...picked].map(i => name(i))
      await bulkIncrement(a.url, changed.map(n => [n, 1]))
      const t0 = now()
      await b.start(60000)
      const tReady = now()
      // B's anti-entropy counter (fresh process) reaches the number of changed entries once all merged;
      // without that metric, poll the changed names themselves.
      const probe = changed.slice(0, 200)
      const wantOf = new Map(await Promise.all(probe.map(async n => [n, await getValue(a.url, n)] as const)))
      const hasMetric = (await scrape(b.url)).has('countd_sync_entries_received_total')
      const tDone = await waitUntil(async () => {
        if (hasMetric) return ((await scrape(b!.url)).get('countd_sync_entries_received_total') ?? 0) >= changedN
        for (const n of changed) if (await getValue(b!.url, n) < wantOf.get(n)!) return false
        return true
      }, 60000, 10)
      // Verify a sample (not timed).
      for (const n of probe) {
        const got = await getValue(b.url, n)
        if (got !== wantOf.get(n)) throw new Error(`after sync B has ${n}=${got}, A has ${wantOf.get(n)}`)
      }
      syncs.push(tDone - tReady)
      fromSpawn.push(tDone - t0)
      progress(`  B ready in ${(tReady - t0).toFixed(0)} ms, in sync ${(tDone - tReady).toFixed(0)} ms later`)
    }

    const rows: Row[] = [
      { section: S, metric: `RSS after loading ${nice} names`, value: rssLoaded / MB, unit: 'MB', target: { op: '<', value: 400 }, note: ctx.quick ? 'quick: 100k names, not the 1M condition' : undefined },
      { section: S, metric: 'RSS after restart (1 s after ready)', value: median(rssRestarted) / MB, unit: 'MB', target: { op: '<', value: 400 }, runs: rssRestarted.map(x => x / MB) },
      { section: S, metric: 'data dir size', value: disk / MB, unit: 'MB' },
      { section: S, metric: `load rate via ${load.batch ? 'POST /counters' : 'single POSTs'}`, value: N / (load.ms / 1000), unit: 'names/s' },
      { section: S, metric: 'restart to ready after kill -9', value: median(restartKill), unit: 'ms', target: { op: '<', value: 3000 }, runs: restartKill },
      { section: S, metric: 'restart to ready after SIGTERM', value: median(restartTerm), unit: 'ms', target: { op: '<', value: 3000 }, runs: restartTerm },
      { section: S, metric: `initial full anti-entropy to an empty node (${nice})`, value: initialSync, unit: 'ms', target: { op: '<', value: 10000 } },
      { section: S, metric: 'anti-entropy, nodes differ in 1% (from B ready)', value: median(syncs), unit: 'ms', target: { op: '<', value: 2000 }, runs: syncs },
      { section: S, metric: '  same, from B\'s spawn (incl. its restart)', value: median(fromSpawn), unit: 'ms', runs: fromSpawn }
    ]
    return {
      id: 5,
      title: `Scale: ${nice} counters`,
      method: `${nice} distinct names (+1 each) loaded into one node with POST /counters (~4,000 names per request, 3 in flight)${ctx.quick ? ' — QUICK MODE: 100,000 names instead of 1,000,000 (the targets are for 1M)' : ''}. ` +
        'RSS = VmRSS from /proc/<pid>/status 2 s after the load and 1 s after each restart; data dir = sum of file sizes. Restart = spawn until the ready log line, after kill -9 and after SIGTERM. ' +
        'Then a second node B joins (initial full sync timed until its /status shows all counters). Anti-entropy: B is killed, 1% of the names are incremented on A, B restarts; ' +
        'time from B\'s ready line until B\'s countd_sync_entries_received_total reaches the number of changed counters (gossip does not replay old messages, so this is anti-entropy); 200 changed names are then verified against A.',
      rows,
      raw: { N, loadMs: load.ms, rssLoaded, rssRestarted, disk, restartKill, restartTerm, initialSync, syncs, fromSpawn }
    }
  } finally {
    await stopNode(a)
    if (b !== undefined) await stopNode(b)
    removeDir(dir)
  }
}
