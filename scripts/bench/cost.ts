// Section 11: what replication costs. The same load (single POST /counter on
// random names, 50 connections) against a node alone and against the same
// kind of node with two replicas receiving its deltas; CPU time of every
// process read from /proc/<pid>/stat around each measurement.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CountdNode } from '../cluster.js'
import type { LoadResult, ReqSpec } from './loadgen.js'
import type { Ctx, Row, SectionResult } from './types.js'
import { makeNode, median, progress, removeDir, sleep, startCluster, stopCluster, stopNode, tempDir, waitPeers, waitWritable } from './util.js'

const CONNECTIONS = 50
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const TICKS_PER_SEC = 100

/** User + system CPU seconds a process has used so far. */
function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces): state is field 3; utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SEC
}

interface Measured { load: LoadResult, cpu: number[], idleCpu: number[], seconds: number }

/** Idle CPU rate of each process over 1 s, then `load` with the CPU each process used meanwhile. */
async function measure (ctx: Ctx, target: CountdNode, pids: number[], durationSec: number, req: ReqSpec): Promise<Measured> {
  const i0 = pids.map(cpuSeconds)
  await sleep(1000)
  const i1 = pids.map(cpuSeconds)
  const c0 = pids.map(cpuSeconds)
  const t0 = performance.now()
  const [load] = await ctx.load.run({ url: target.url, connections: CONNECTIONS, durationSec, req })
  const seconds = (performance.now() - t0) / 1000
  const c1 = pids.map(cpuSeconds)
  return { load, cpu: c1.map((c, i) => c - c0[i]), idleCpu: i1.map((c, i) => c - i0[i]), seconds }
}

export async function clusterCost (ctx: Ctx): Promise<SectionResult> {
  const durationSec = ctx.quick ? 3 : 8
  const S = '11 cluster cost'
  const alone: Measured[] = []
  const joined: Measured[] = []
  const loadPid = ctx.load.proc.pid!
  for (let r = 0; r < ctx.repeats; r++) {
    const req = (tag: string): ReqSpec => ({ kind: 'incRandom', prefix: `s11-${tag}-${r}-`, pool: 100000 })
    // The node alone.
    const dir = tempDir('s11')
    const solo = await makeNode('solo', join(dir, 'solo'))
    try {
      await solo.start()
      await ctx.load.run({ url: solo.url, connections: CONNECTIONS, durationSec: 1, req: req('warm') })
      progress(`run ${r + 1}/${ctx.repeats}: one node alone, ${CONNECTIONS} connections, ${durationSec} s`)
      alone.push(await measure(ctx, solo, [solo.proc!.pid!, loadPid], durationSec, req('solo')))
    } finally {
      await stopNode(solo)
      removeDir(dir)
    }
    // The same load on node 1 of three.
    const c = await startCluster(3)
    try {
      await waitPeers(c.nodes, 2)
      for (const n of c.nodes) await waitWritable(n)
      const [a] = c.nodes
      await ctx.load.run({ url: a.url, connections: CONNECTIONS, durationSec: 1, req: req('cwarm') })
      progress(`run ${r + 1}/${ctx.repeats}: node 1 of 3 (2 replicas receive its deltas), ${CONNECTIONS} connections, ${durationSec} s`)
      joined.push(await measure(ctx, a, [...c.nodes.map(n => n.proc!.pid!), loadPid], durationSec, req('joined')))
    } finally {
      await stopCluster(c)
    }
    const al = alone[alone.length - 1]
    const jo = joined[joined.length - 1]
    progress(`  alone ${Math.round(al.load.rps)}/s, with 2 replicas ${Math.round(jo.load.rps)}/s (${(jo.load.rps / al.load.rps).toFixed(2)}); receiving CPU ${receivingMicros(jo).toFixed(1)} µs per increment`)
  }
  const ratios = joined.map((j, i) => j.load.rps / alone[i].load.rps)
  const share = (m: Measured, i: number): number => 100 * m.cpu[i] / m.seconds
  const rows: Row[] = [
    { section: S, metric: 'node alone: increments/s', value: median(alone.map(m => m.load.rps)), unit: 'inc/s', runs: alone.map(m => m.load.rps) },
    { section: S, metric: 'same load, node with 2 replicas: increments/s', value: median(joined.map(m => m.load.rps)), unit: 'inc/s', runs: joined.map(m => m.load.rps) },
    { section: S, metric: 'throughput ratio (with replicas / alone, per run)', value: median(ratios), unit: 'ratio', target: { op: '>=', value: 0.8 }, runs: ratios },
    { section: S, metric: 'CPU per replicated increment, each receiving replica', value: median(joined.map(receivingMicros)), unit: 'µs', target: { op: '<=', value: 10 }, runs: joined.map(receivingMicros) },
    { section: S, metric: 'CPU per increment, the written node alone', value: median(alone.map(m => 1e6 * m.cpu[0] / m.load.ok)), unit: 'µs', runs: alone.map(m => 1e6 * m.cpu[0] / m.load.ok) },
    { section: S, metric: 'CPU per increment, the written node with 2 replicas', value: median(joined.map(m => 1e6 * m.cpu[0] / m.load.ok)), unit: 'µs', runs: joined.map(m => 1e6 * m.cpu[0] / m.load.ok) },
    { section: S, metric: 'CPU share alone: node / load generator', value: median(alone.map(m => share(m, 0))), unit: '% of a core', note: `load generator ${median(alone.map(m => share(m, 1))).toFixed(0)} %` },
    { section: S, metric: 'CPU share with replicas: written node', value: median(joined.map(m => share(m, 0))), unit: '% of a core', note: `replicas ${median(joined.map(m => share(m, 1))).toFixed(0)} % and ${median(joined.map(m => share(m, 2))).toFixed(0)} %, load generator ${median(joined.map(m => share(m, 3))).toFixed(0)} %` }
  ]
  return {
    id: 11,
    title: 'Cluster cost: what two receiving replicas cost the written node and themselves',
    method: `autocannon (separate process), ${CONNECTIONS} connections, single POST /counter/<random name of 100,000> body "1", ${durationSec} s: first against a node alone, then against node 1 of a fresh 3-node cluster (nodes 2 and 3 receive its deltas by gossip). ` +
      'CPU = utime + stime from /proc/<pid>/stat over the measurement; a receiving replica\'s CPU per increment = (its CPU over the run - its idle CPU rate x the run\'s length) / increments acknowledged by node 1, averaged over the two replicas. All processes share this machine\'s cores.',
    rows,
    raw: { alone, joined }
  }
}

/** Mean CPU of the two receiving replicas per increment acknowledged by node 1, their idle rate taken off. */
function receivingMicros (m: Measured): number {
  const busy = [1, 2].map(i => Math.max(0, m.cpu[i] - m.idleCpu[i] * m.seconds))
  return 1e6 * (busy[0] + busy[1]) / 2 / m.load.ok
}
