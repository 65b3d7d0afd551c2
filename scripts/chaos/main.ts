// Jepsen-style chaos run against a real countd cluster in network
// namespaces: concurrent increments while a nemesis partitions, kills,
// pauses, wipes and degrades nodes; then a checker holds the history to
// SPEC §4. Usage:
//   npm run chaos -- --nodes 5 --seconds 120 --seed 7 [--nemesis all|partition,kill,...] [--out DIR] [--keep]
import '../../src/polyfill.js'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { CountdNode } from '../cluster.js'
import * as net from './netns.js'
import { renderSvg } from './svg.js'

const NEMESES = ['partition', 'flap', 'kill', 'pause', 'wipe', 'netem'] as const
type Nemesis = typeof NEMESES[number]

interface Options { nodes: number, seconds: number, seed: number, nemeses: Nemesis[], out: string, keep: boolean, clients: number }

function parseArgs (argv: string[]): Options {
  const o: Options = { nodes: 5, seconds: 30, seed: Date.now() % 100000, nemeses: [...NEMESES], out: 'chaos-out', keep: false, clients: 8 }
  for (let i = 0; i < argv.length; i++) {
    const [flag, v] = [argv[i], argv[i + 1]]
    const num = (): number => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 0) usage(`${flag} needs a whole number`)
      i++
      return n
    }
    if (flag === '--nodes') o.nodes = num()
    else if (flag === '--seconds') o.seconds = num()
    else if (flag === '--seed') o.seed = num()
    else if (flag === '--clients') o.clients = num()
    else if (flag === '--out') { o.out = v; i++ } else if (flag === '--keep') o.keep = true
    else if (flag === '--nemesis') {
      i++
      o.nemeses = v === 'all' ? [...NEMESES] : v === 'none' ? [] : v.split(',') as Nemesis[]
      for (const n of o.nemeses) if (!NEMESES.includes(n)) usage(`unknown nemesis ${n} (have: ${NEMESES.join(', ')}, all, none)`)
    } else usage(`unknown flag ${flag}`)
  }
  if (o.nodes < 3 || o.nodes > 9) usage('--nodes must be 3..9')
  return o
}

function usage (msg: string): never {
  process.stderr.write(`chaos: ${msg}\n`)
  process.exit(2)
}

/** mulberry32: a seeded PRNG so a run can be replayed. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))
const log = (msg: string): void => { process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 23)}] ${msg}\n`) }

export interface Fault { kind: string, nodes: number[], start: number, end?: number }
export interface Sample { t: number, node: number, value: number }

/** Per counter: sum of increments sent at all, acked, of unknown fate, refused. */
interface Counts { sent: bigint, acked: bigint, unknown: bigint, failed: bigint }

class Run {
  readonly t0 = Date.now()
  readonly nodes: CountdNode[] = []
  readonly counters = ['c0', 'c1', 'c2', 'c3']
  readonly counts = new Map(this.counters.map(c => [c, { sent: 0n, acked: 0n, unknown: 0n, failed: 0n } satisfies Counts]))
  /** Start of the partition in force now (a member is hidden from some node). */
  private partitionSince: number | undefined
  /** Nodes clients stay away from (about to be wiped). */
  private readonly drained = new Set<CountdNode>()
  readonly ops = { ok: 0, failed: 0, unknown: 0 }
  readonly faults: Fault[] = []
  readonly samples: Sample[] = []
  readonly problems: string[] = []
  readonly consistent = { ok: 0, unavailable: 0 }
  /** Last value seen per node and counter (monotonicity), reset when a node is wiped. */
  private readonly lastSeen = new Map<string, bigint>()
  readonly wipedIds: string[] = []
  private stopping = false
  readonly random: () => number

  /** The nemesis draws from its own generator, so a seed replays the same faults. */
  private readonly nemesisRandom: () => number

  constructor (readonly o: Options, readonly dir: string) {
    this.random = rng(o.seed + 1)
    this.nemesisRandom = rng(o.seed)
  }

  now (): number { return Date.now() - this.t0 }
  pick<T> (xs: T[]): T { return xs[Math.floor(this.random() * xs.length)] }
  pickFault<T> (xs: T[]): T { return xs[Math.floor(this.nemesisRandom() * xs.length)] }

  async start (): Promise<void> {
    net.setup(this.o.nodes)
    for (let i = 1; i <= this.o.nodes; i++) {
      this.nodes.push(new CountdNode({
        name: `n${i}`,
        dataDir: join(this.dir, `n${i}`),
        httpHost: net.mgmtIp(i),
        httpPort: 7777,
        p2pHost: net.dataIp(i),
        p2pPort: 7778,
        // Every node names a peer, as an operator would, so a wiped node
        // rejoins instead of starting a one-node cluster.
        peers: [`${net.dataIp(i === 1 ? 2 : 1)}:7778`],
        wrap: ['ip', 'netns', 'exec', net.nsName(i)],
        logLevel: 'warn',
        // The management addresses exist only between this host's namespaces.
        args: ['--consistent-timeout', '2', '--allow-unauthenticated']
      }))
    }
    await this.nodes[0].start()
    await Promise.all(this.nodes.slice(1).map(async n => await n.start()))
  }

  // ---- workload ----

  async client (): Promise<void> {
    while (!this.stopping) {
      const node = this.pick(this.nodes)
      const name = this.pick(this.counters)
      const by = BigInt(1 + Math.floor(this.random() * 5))
      const c = this.counts.get(name)!
      if (this.drained.has(node)) continue
      // Counted as sent before it leaves: a reader may see it before the ack.
      c.sent += by
      try {
        const res = await fetch(`${node.url}/counter/${name}`, { method: 'POST', body: by.toString(), signal: AbortSignal.timeout(1000) })
        await res.text()
        if (res.status === 200) { c.acked += by; this.ops.ok++ } else { c.unknown += by; this.ops.unknown++ }
      } catch (err: any) {
        // Refused: the request never reached a process, so it cannot count.
        if (err?.cause?.code === 'ECONNREFUSED') { c.failed += by; this.ops.failed++ } else { c.unknown += by; this.ops.unknown++ }
        await sleep(20)
      }
    }
  }

  /** Every node's value of every counter must never go down (except after a wipe). */
  async reader (): Promise<void> {
    while (!this.stopping) {
      await Promise.all(this.nodes.map(async (n, i) => {
        if (this.drained.has(n)) return // being wiped: starts a new history
        let sum = 0
        for (const name of this.counters) {
          try {
            const res = await fetch(`${n.url}/counter/${name}/value`, { signal: AbortSignal.timeout(500) })
            if (res.status !== 200) continue
            const v = BigInt(await res.text())
            sum += Number(v)
            this.checkMonotonic(i, name, v)
          } catch {}
        }
        this.samples.push({ t: this.now(), node: i + 1, value: sum })
      }))
      await sleep(200)
    }
  }

  private checkMonotonic (i: number, name: string, v: bigint): void {
    const key = `${i}/${name}`
    const prev = this.lastSeen.get(key) ?? 0n
    if (v < prev) this.problems.push(`monotonic: n${i + 1} ${name} went ${prev} -> ${v} at ${this.now()} ms`)
    else this.lastSeen.set(key, v)
    const c = this.counts.get(name)!
    if (v > c.sent) this.problems.push(`invented: n${i + 1} ${name} = ${v} > everything sent ${c.sent}`)
  }

  /** consistent_value: a 200 must include every increment acked before the read began. */
  async consistentReader (): Promise<void> {
    while (!this.stopping) {
      const n = this.pick(this.nodes)
      const name = this.pick(this.counters)
      const ackedBefore = this.counts.get(name)!.acked
      const startedAt = this.now()
      try {
        const res = await fetch(`${n.url}/counter/${name}/consistent_value?timeout=1`, { signal: AbortSignal.timeout(3000) })
        const body = await res.text()
        if (res.status === 200) {
          this.consistent.ok++
          if (BigInt(body) < ackedBefore) this.problems.push(`consistent read: ${n.name} ${name} = ${body} < ${ackedBefore} acked before the read`)
          // A partition that was in force for the whole read hides a member from every node.
          if (this.partitionSince !== undefined && this.partitionSince < startedAt) this.problems.push(`consistent read: ${n.name} answered 200 during a partition (read at ${startedAt} ms)`)
        } else if (res.status === 503) {
          this.consistent.unavailable++
        } else {
          this.problems.push(`consistent read: unexpected ${res.status} ${body}`)
        }
      } catch {}
      await sleep(300)
    }
  }

  // ---- nemesis ----

  async nemesis (until: number): Promise<void> {
    while (this.now() < until) {
      await sleep(1000 + this.nemesisRandom() * 1500)
      if (this.o.nemeses.length === 0 || this.now() >= until) continue
      const kind = this.pickFault(this.o.nemeses)
      const fault: Fault = { kind, nodes: [], start: this.now() }
      try {
        if (!await this.inject(kind, fault)) continue
      } catch (err: any) {
        this.problems.push(`nemesis ${kind} failed: ${err.message}`)
      }
      fault.end = this.now()
      this.faults.push(fault)
    }
  }

  private someNodes (k: number): number[] {
    const all = this.nodes.map((_, i) => i + 1)
    const out: number[] = []
    while (out.length < k) {
      const x = this.pickFault(all)
      if (!out.includes(x)) out.push(x)
    }
    return out.sort()
  }

  /** Apply one fault and undo it; false if it was skipped. */
  private async inject (kind: Nemesis, fault: Fault): Promise<boolean> {
    const hold = 2000 + this.nemesisRandom() * 3000
    const n = this.o.nodes
    if (kind === 'partition') {
      fault.nodes = this.someNodes(this.nemesisRandom() < 0.5 ? 1 : Math.floor(n / 2))
      log(`partition ${fault.nodes.join(',')} | rest`)
      net.partition(fault.nodes)
      this.partitionSince = this.now()
      await sleep(hold)
      this.partitionSince = undefined
      net.heal(n)
    } else if (kind === 'flap') {
      fault.nodes = this.someNodes(Math.floor(n / 2))
      log(`flap ${fault.nodes.join(',')}`)
      const end = Date.now() + hold
      while (Date.now() < end) {
        net.partition(fault.nodes)
        await sleep(200 + this.nemesisRandom() * 500)
        net.heal(n)
        await sleep(200 + this.nemesisRandom() * 500)
      }
    } else if (kind === 'kill') {
      fault.nodes = this.someNodes(1)
      const node = this.nodes[fault.nodes[0] - 1]
      log(`kill -9 ${node.name}`)
      await node.kill('SIGKILL')
      await sleep(hold / 2)
      await node.start()
    } else if (kind === 'pause') {
      fault.nodes = this.someNodes(1)
      const node = this.nodes[fault.nodes[0] - 1]
      log(`SIGSTOP ${node.name}`)
      node.pause()
      await sleep(hold)
      node.resume()
    } else if (kind === 'netem') {
      fault.nodes = this.someNodes(Math.max(1, Math.floor(n / 2)))
      log(`${net.hasNetem() ? 'netem loss 20% delay 50ms' : 'tbf 256 kbit/s, 50 ms queue (no netem in this kernel)'} on ${fault.nodes.join(',')}`)
      for (const i of fault.nodes) net.degrade(i, 20, 50)
      await sleep(hold)
      for (const i of fault.nodes) net.undegrade(i)
    } else if (kind === 'wipe') {
      // Only after the node's increments have spread: clients stop using
      // it, then every other node must hold its latest own counts.
      fault.nodes = this.someNodes(1)
      const node = this.nodes[fault.nodes[0] - 1]
      this.drained.add(node)
      await sleep(1200) // in-flight requests finish or time out
      const spread = await this.spreadFrom(node, 5000)
      if (!spread) {
        this.drained.delete(node)
        log(`wipe of ${node.name} skipped: its increments did not reach every node in 5 s`)
        return false
      }
      log(`wipe ${node.name}`)
      const oldId = node.peerId
      await node.kill('SIGKILL')
      node.wipe()
      for (const name of this.counters) this.lastSeen.delete(`${fault.nodes[0] - 1}/${name}`)
      await node.start()
      this.wipedIds.push(oldId)
      this.drained.delete(node)
      // The operator retires the old replica id (its counts stay).
      await Promise.all(this.nodes.map(async m => await fetch(`${m.url}/members/${oldId}`, { method: 'DELETE', signal: AbortSignal.timeout(2000) }).catch(() => {})))
    }
    return true
  }

  /** Wait until every other node holds `node`'s own counts of every counter. */
  async spreadFrom (node: CountdNode, timeoutMs: number): Promise<boolean> {
    const view = async (n: CountdNode, name: string): Promise<bigint> => {
      const text = await (await fetch(`${n.url}/counter/${name}`, { signal: AbortSignal.timeout(1000) })).text()
      const m = new RegExp(`"${node.peerId}":(\\d+)`).exec(text)
      return m === null ? 0n : BigInt(m[1])
    }
    const start = Date.now()
    while (Date.now() - start < timeoutMs) {
      try {
        const own = await Promise.all(this.counters.map(async c => await view(node, c)))
        const others = await Promise.all(this.nodes.filter(n => n !== node).map(async n => await Promise.all(this.counters.map(async c => await view(n, c)))))
        if (others.every(row => row.every((v, j) => v >= own[j]))) return true
      } catch {}
      await sleep(100)
    }
    return false
  }

  /** Wait until every node shows the same values, all ≥ acked; returns ms or undefined. */
  async converged (timeoutMs: number): Promise<number | undefined> {
    const start = Date.now()
    while (Date.now() - start < timeoutMs) {
      try {
        const rows = await Promise.all(this.nodes.map(async n => await Promise.all(this.counters.map(async c =>
          BigInt(await (await fetch(`${n.url}/counter/${c}/value`, { signal: AbortSignal.timeout(1000) })).text())))))
        const same = rows.every(r => r.every((v, j) => v === rows[0][j]))
        const complete = this.counters.every((c, j) => rows[0][j] >= this.counts.get(c)!.acked)
        if (same && complete) return Date.now() - start
      } catch {}
      await sleep(50)
    }
    return undefined
  }

  // ---- the run ----

  async go (): Promise<boolean> {
    const until = this.o.seconds * 1000
    const workers = [
      ...Array.from({ length: this.o.clients }, async () => await this.client()),
      this.reader(),
      this.consistentReader()
    ]
    const progress = setInterval(() => {
      log(`t=${(this.now() / 1000).toFixed(0)}s ok=${this.ops.ok} unknown=${this.ops.unknown} failed=${this.ops.failed} problems=${this.problems.length}`)
    }, 5000)
    await this.nemesis(until)
    log('healing everything; stopping the workload')
    net.heal(this.o.nodes)
    for (let i = 1; i <= this.o.nodes; i++) net.undegrade(i)
    for (const n of this.nodes) {
      n.resume()
      if (!n.running) await n.start()
    }
    this.stopping = true
    await Promise.all(workers)
    clearInterval(progress)
    const convergeMs = await this.converged(5000)
    if (convergeMs === undefined) this.problems.push('convergence: nodes did not agree on every acked increment within 5 s of the last fault')
    await this.finalChecks()
    await this.badInput()
    return this.report(convergeMs)
  }

  private async finalChecks (): Promise<void> {
    for (const [i, n] of this.nodes.entries()) {
      for (const name of this.counters) {
        const v = BigInt(await (await fetch(`${n.url}/counter/${name}/value`)).text())
        const c = this.counts.get(name)!
        if (v < c.acked) this.problems.push(`lost acks: n${i + 1} ${name} = ${v} < acked ${c.acked}`)
        if (v > c.sent) this.problems.push(`invented: n${i + 1} ${name} = ${v} > sent ${c.sent}`)
      }
    }
    // With everything healed, consistent reads must succeed with the exact total.
    for (const n of this.nodes) {
      const res = await fetch(`${n.url}/counter/c0/consistent_value?timeout=3`)
      const body = await res.text()
      const acked = this.counts.get('c0')!.acked
      if (res.status !== 200) this.problems.push(`consistent read after heal: ${n.name} answered ${res.status} ${body}`)
      else if (BigInt(body) < acked) this.problems.push(`consistent read after heal: ${n.name} ${body} < acked ${acked}`)
    }
  }

  private async badInput (): Promise<void> {
    const n = this.nodes[0]
    const before = await (await fetch(`${n.url}/counters`)).text()
    const bad: Array<[string, string, string | undefined, Record<string, string>]> = [
      ['POST', '/counter/c0', '0', {}], ['POST', '/counter/c0', '-1', {}], ['POST', '/counter/c0', '1.5', {}],
      ['POST', '/counter/c0', '1e3', {}], ['POST', '/counter/c0', '0x10', {}], ['POST', '/counter/c0', '9007199254740992', {}],
      ['POST', '/counter/c0', '{"value":', { 'Content-Type': 'application/json' }], ['POST', '/counter/c0', 'x'.repeat(70 * 1024), {}],
      ['POST', '/counter/bad%20name', '1', {}], ['GET', '/counter/' + 'a'.repeat(201) + '/value', undefined, {}]
    ]
    for (const [method, path, body, headers] of bad) {
      const res = await fetch(`${n.url}${path}`, { method, body, headers })
      const text = await res.text()
      let isJson = false
      try { isJson = typeof JSON.parse(text).error === 'string' } catch {}
      if (res.status < 400 || res.status >= 500 || !isJson) this.problems.push(`bad input: ${method} ${path.slice(0, 40)} -> ${res.status} ${text.slice(0, 80)}`)
    }
    if (await (await fetch(`${n.url}/counters`)).text() !== before) this.problems.push('bad input changed state')
  }

  private report (convergeMs: number | undefined): boolean {
    mkdirSync(this.o.out, { recursive: true })
    const counts = Object.fromEntries([...this.counts].map(([k, c]) => [k, { sent: c.sent.toString(), acked: c.acked.toString(), unknown: c.unknown.toString(), failed: c.failed.toString() }]))
    writeFileSync(join(this.o.out, 'history.json'), JSON.stringify({ options: this.o, ops: this.ops, counts, faults: this.faults, consistent: this.consistent, problems: this.problems, wipedIds: this.wipedIds, samples: this.samples, convergeMs }, null, 1))
    const acked = [...this.counts.values()].reduce((s, c) => s + c.acked, 0n)
    writeFileSync(join(this.o.out, 'values.svg'), renderSvg(this.samples, this.faults, this.o.nodes, Number(acked)))
    const lost = this.problems.filter(p => p.startsWith('lost')).length
    const invented = this.problems.filter(p => p.startsWith('invented')).length
    for (const p of this.problems.slice(0, 30)) log(`PROBLEM ${p}`)
    const ok = this.problems.length === 0
    process.stdout.write(`${ok ? 'PASS' : 'FAIL'} nodes=${this.o.nodes} seed=${this.o.seed} seconds=${this.o.seconds} acked_ops=${this.ops.ok} acked=${acked} unknown_ops=${this.ops.unknown} failed_ops=${this.ops.failed} faults=${this.faults.length} consistent_ok=${this.consistent.ok} consistent_503=${this.consistent.unavailable} lost=${lost} invented=${invented} problems=${this.problems.length} converge_ms=${convergeMs ?? 'never'} out=${resolve(this.o.out)}\n`)
    return ok
  }

  async stop (): Promise<void> {
    this.stopping = true
    for (const n of this.nodes) n.resume()
    await Promise.all(this.nodes.map(async n => await n.kill('SIGKILL')))
    net.cleanup()
    net.unlock()
    if (!this.o.keep) rmSync(this.dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  const missing = net.netnsAvailable()
  if (missing !== undefined) usage(missing)
  const run = new Run(o, mkdtempSync(join(tmpdir(), 'countd-chaos-')))
  let stopping = false
  const abort = (): void => {
    if (stopping) return
    stopping = true
    log('interrupted: cleaning up')
    run.stop().finally(() => process.exit(130))
  }
  process.once('SIGINT', abort)
  process.once('SIGTERM', abort)
  let ok = false
  try {
    log(`seed ${o.seed}: ${o.nodes} nodes, ${o.seconds} s, nemeses ${o.nemeses.join(',') || 'none'}`)
    await run.start()
    ok = await run.go()
  } catch (err: any) {
    log(`error: ${err.message}`)
    process.stdout.write(`FAIL error=${JSON.stringify(err.message)}\n`)
  } finally {
    await run.stop()
  }
  process.exit(ok ? 0 : 1)
}

await main()
