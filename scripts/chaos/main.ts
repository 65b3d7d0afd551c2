// Jepsen-style chaos run against a real countd cluster in network
// namespaces: concurrent clients (counters, items, IDs) while a seeded
// nemesis partitions, kills, pauses, wipes, degrades and skews clocks,
// often several at once; every operation goes to history.json and a
// checker holds the history to SPEC §4 and §6. Usage:
//   npm run chaos -- --nodes 5 --seconds 120 --seed 7 [--workload counters,items,ids]
//                    [--nemesis all|none|partition,kill,...] [--clients 8] [--out DIR] [--keep]
//                    [--node-logs]   (each node's debug log, libp2p's dial/upgrade/connection
//                                     monitor lines included, in DIR/n<i>.log)
//   npm run chaos -- --check DIR/history.json     (check a saved history again)
import '../../src/polyfill.js'
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { CountdNode } from '../cluster.js'
import { check, verdictLine } from './checker.js'
import { WORKLOADS, type Fault, type History, type Op, type Workload } from './history.js'
import { describePlan, execute, makePlan, NEMESES, rng, type FaultTarget, type Nemesis } from './nemesis.js'
import * as net from './netns.js'
import { renderSvg, samplesFrom } from './svg.js'
import { CountersWorkload, IdsWorkload, ItemsWorkload, type RunContext, type WorkloadRunner } from './workloads.js'

/** The workloads a run uses unless --workload says otherwise (the server must support them). */
const DEFAULT_WORKLOADS: Workload[] = ['counters', 'items', 'ids']

/** Every node runs with a token: its HTTP API listens beyond loopback (SPEC §1 safe by default). */
const API_TOKEN = 'chaos-harness-token-0123456789abcdef'

interface Options { nodes: number, seconds: number, seed: number, nemeses: Nemesis[], workloads: Workload[], out: string, keep: boolean, nodeLogs: boolean, clients: number, check?: string }

function parseArgs (argv: string[]): Options {
  const o: Options = { nodes: 5, seconds: 30, seed: Date.now() % 100000, nemeses: [...NEMESES], workloads: [...DEFAULT_WORKLOADS], out: 'chaos-out', keep: false, nodeLogs: false, clients: 8 }
  let nemesisGiven = false
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
    else if (flag === '--node-logs') o.nodeLogs = true
    else if (flag === '--check') {
      if (v === undefined) usage('--check needs a history.json file')
      o.check = v
      i++
    } else if (flag === '--workload') {
      i++
      o.workloads = (v ?? '').split(',').filter(w => w !== '') as Workload[]
      if (o.workloads.length === 0) usage(`--workload needs a list of ${WORKLOADS.join(', ')}`)
      for (const w of o.workloads) if (!WORKLOADS.includes(w)) usage(`unknown workload ${w} (have: ${WORKLOADS.join(', ')})`)
    } else if (flag === '--nemesis') {
      i++
      nemesisGiven = true
      o.nemeses = v === 'all' ? [...NEMESES] : v === 'none' ? [] : (v ?? '').split(',') as Nemesis[]
      for (const n of o.nemeses) if (!NEMESES.includes(n)) usage(`unknown nemesis ${n} (have: ${NEMESES.join(', ')}, all, none)`)
    } else usage(`unknown flag ${flag}`)
  }
  if (o.nodes < 3 || o.nodes > 9) usage('--nodes must be 3..9')
  // The clock nemesis moves only the IDs' clock: without the ids workload it tests nothing.
  if (!o.workloads.includes('ids') && o.nemeses.includes('clock')) {
    if (nemesisGiven && argv[argv.indexOf('--nemesis') + 1] !== 'all') usage('--nemesis clock needs --workload with ids')
    o.nemeses = o.nemeses.filter(n => n !== 'clock')
  }
  return o
}

function usage (msg: string): never {
  process.stderr.write(`chaos: ${msg}\n`)
  process.exit(2)
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))
const log = (msg: string): void => { process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 23)}] ${msg}\n`) }

class Run {
  /** Time 0 of the history: reset when the cluster is up, so the fault plan's times start with the workload. */
  t0 = Date.now()
  readonly nodes: CountdNode[] = []
  readonly ops: Op[] = []
  readonly harnessProblems: string[] = []
  readonly drained = new Set<CountdNode>()
  readonly paused = new Set<CountdNode>()
  private stopping = false
  readonly ctx: RunContext
  readonly workloads: WorkloadRunner[]
  private readonly retired: string[] = []

  constructor (readonly o: Options, readonly dir: string) {
    this.ctx = {
      nodes: this.nodes,
      headers: { Authorization: `Bearer ${API_TOKEN}` },
      now: () => this.now(),
      random: rng(o.seed + 1), // the nemesis draws from its own generator, so a seed replays the same faults
      record: op => this.ops.push(op),
      drained: this.drained,
      stopping: () => this.stopping
    }
    this.workloads = o.workloads.map(w => w === 'counters' ? new CountersWorkload(this.ctx) : w === 'items' ? new ItemsWorkload(this.ctx) : new IdsWorkload(this.ctx))
  }

  now (): number { return Date.now() - this.t0 }
  clockFile (i: number): string { return join(this.dir, `clock-n${i}`) }

  async start (): Promise<void> {
    mkdirSync(this.o.out, { recursive: true })
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
        logLevel: this.o.nodeLogs ? 'debug' : 'warn',
        ...(this.o.nodeLogs ? { onLine: (line: string) => { appendFileSync(join(this.o.out, `n${i}.log`), `${Date.now()} ${line}\n`) } } : {}),
        args: ['--consistent-timeout', '2', '--api-token', API_TOKEN],
        // Test hook (SPEC §6): the node's ID clock is Date.now() + the ms in this file.
        env: {
          COUNTD_TEST_CLOCK_FILE: this.clockFile(i),
          // How issue 15 was found: libp2p's own view of dials and connections.
          ...(this.o.nodeLogs ? { DEBUG: 'libp2p:connection-manager*,libp2p:upgrader*,libp2p:tcp*,libp2p:connection-monitor*' } : {})
        }
      }))
    }
    await this.nodes[0].start()
    await Promise.all(this.nodes.slice(1).map(async n => await n.start()))
  }

  private target (): FaultTarget {
    const node = (i: number): CountdNode => this.nodes[i - 1]
    return {
      now: () => this.now(),
      partition: side => net.partition(side),
      heal: () => net.heal(this.o.nodes),
      kill: async i => await node(i).kill('SIGKILL'),
      restart: async i => await node(i).start(),
      pause: i => { node(i).pause(); this.paused.add(node(i)) },
      resume: i => { node(i).resume(); this.paused.delete(node(i)) },
      degrade: i => net.degrade(i, 20, 50),
      undegrade: i => net.undegrade(i),
      setClock: (i, ms) => writeFileSync(this.clockFile(i), String(ms)),
      wipe: async (i, fault) => await this.wipe(node(i), fault)
    }
  }

  /**
   * Wipe a node's data dir, but only once its writes have spread (SPEC
   * §4.1): clients stop using it, then every other node must hold what it
   * acknowledged. The operator then retires its old replica id.
   */
  private async wipe (node: CountdNode, fault: Fault): Promise<string | undefined> {
    this.drained.add(node)
    try {
      await sleep(1200) // in-flight requests finish or time out
      const deadline = Date.now() + 5000
      let spread = false
      while (!spread && Date.now() < deadline) {
        try { spread = (await Promise.all(this.workloads.map(async w => await w.spreadFrom(node)))).every(Boolean) } catch {}
        if (!spread) await sleep(100)
      }
      if (!spread) return 'its writes did not reach every node in 5 s'
      log(`wipe ${node.name}`)
      const oldId = node.peerId
      await node.kill('SIGKILL')
      node.wipe()
      fault.wipedAt = this.now()
      await node.start()
      this.retired.push(oldId)
      await Promise.all(this.nodes.map(async m => await fetch(`${m.url}/members/${oldId}`, { method: 'DELETE', headers: this.ctx.headers, signal: AbortSignal.timeout(2000) }).catch(() => {})))
      return undefined
    } finally {
      this.drained.delete(node)
    }
  }

  /** Undo whatever is still in force; true if anything was. */
  private async healEverything (): Promise<boolean> {
    let changed = false
    net.heal(this.o.nodes)
    for (let i = 1; i <= this.o.nodes; i++) {
      net.undegrade(i)
      writeFileSync(this.clockFile(i), '0')
    }
    for (const n of this.nodes) {
      if (this.paused.has(n)) { n.resume(); this.paused.delete(n); changed = true }
      if (!n.running) {
        changed = true
        try { await n.start() } catch (err: any) {
          this.harnessProblems.push(`restart of ${n.name} after the faults failed: ${String(err.message).split('\n')[0]}`)
          process.stderr.write(`[chaos] ${String(err.message).slice(0, 2000)}\n`)
        }
      }
    }
    return changed
  }

  async go (): Promise<History> {
    this.t0 = Date.now()
    const until = this.o.seconds * 1000
    const plan = makePlan({ nodes: this.o.nodes, seconds: this.o.seconds, seed: this.o.seed, nemeses: this.o.nemeses })
    for (const line of describePlan(plan)) log(`plan: ${line}`)
    const perWorkload = Math.max(2, Math.ceil(this.o.clients / this.workloads.length))
    const workers = this.workloads.flatMap(w => w.loops(perWorkload))
    const progress = setInterval(() => {
      const count = (r: Op['result']): number => this.ops.filter(o => o.result === r && (o.op === 'inc' || o.op === 'items-add' || o.op === 'ids')).length
      log(`t=${(this.now() / 1000).toFixed(0)}s ok=${count('ok')} unknown=${count('info')} failed=${count('fail')}`)
    }, 5000)
    const executed = await execute(plan, this.target(), log, this.harnessProblems)
    if (this.now() < until) await sleep(until - this.now())
    // Convergence is timed from the last heal: the final fault undone, or
    // (when the faults ended early) the moment the clients stop.
    const changed = await this.healEverything()
    this.stopping = true
    const lastHealMs = changed ? this.now() : Math.max(executed.lastHealMs, this.now())
    log(`last heal at ${lastHealMs} ms; stopping the workload`)
    await Promise.all(workers)
    clearInterval(progress)
    const readers = this.workloads.filter(w => !(w instanceof IdsWorkload))
    for (let round = 0; readers.length > 0 && this.now() - lastHealMs < 6000; round++) {
      const from = this.ops.length
      await Promise.all(readers.map(async w => await w.readAll({ round })))
      const mine = this.ops.slice(from)
      if (readers.every(w => w.agreed(mine))) break
      await sleep(50)
    }
    for (const w of readers) await w.readAll({ final: true })
    for (const w of readers) await w.finalConsistent()
    await this.badInput()
    return {
      version: 1,
      options: { nodes: this.o.nodes, seconds: this.o.seconds, seed: this.o.seed, workloads: this.o.workloads, nemeses: this.o.nemeses, clients: this.o.clients },
      t0: this.t0,
      ops: this.ops,
      faults: executed.faults,
      lastHealMs,
      harnessProblems: this.harnessProblems
    }
  }

  /** Malformed requests get a 4xx JSON error and change nothing (SPEC §4.6). */
  private async badInput (): Promise<void> {
    const n = this.nodes[0]
    const get = async (path: string): Promise<string> => await (await fetch(`${n.url}${path}`, { headers: this.ctx.headers })).text()
    const before = await get('/counters')
    const bad: Array<[string, string, string | undefined, Record<string, string>]> = [
      ['POST', '/counter/c0', '0', {}], ['POST', '/counter/c0', '-1', {}], ['POST', '/counter/c0', '1.5', {}],
      ['POST', '/counter/c0', '1e3', {}], ['POST', '/counter/c0', '0x10', {}], ['POST', '/counter/c0', '9007199254740992', {}],
      ['POST', '/counter/c0', '{"value":', { 'Content-Type': 'application/json' }], ['POST', '/counter/c0', 'x'.repeat(70 * 1024), {}],
      ['POST', '/counter/bad%20name', '1', {}], ['GET', '/counter/' + 'a'.repeat(201) + '/value', undefined, {}]
    ]
    for (const [method, path, body, headers] of bad) {
      const res = await fetch(`${n.url}${path}`, { method, body, headers: { ...this.ctx.headers, ...headers } })
      const text = await res.text()
      let isJson = false
      try { isJson = typeof JSON.parse(text).error === 'string' } catch {}
      if (res.status < 400 || res.status >= 500 || !isJson) this.harnessProblems.push(`bad input: ${method} ${path.slice(0, 40)} -> ${res.status} ${text.slice(0, 80)}`)
    }
    if (await get('/counters') !== before) this.harnessProblems.push('bad input changed state')
  }

  async stop (): Promise<void> {
    this.stopping = true
    for (const n of this.nodes) n.resume()
    await Promise.all(this.nodes.map(async n => await n.kill('SIGKILL')))
    // A run refused by the lock must not tear down the namespaces of the run that holds it.
    if (net.holdsLock()) {
      net.cleanup()
      net.unlock()
    }
    if (!this.o.keep) rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Write history.json and values.svg, print the verdict line; true if it passed. */
function report (h: History, out: string): boolean {
  mkdirSync(out, { recursive: true })
  writeFileSync(join(out, 'history.json'), JSON.stringify(h))
  const v = check(h)
  const counters = h.options.workloads.includes('counters')
  const acked = Number(counters ? v.stats.acked : v.stats.items_acked ?? 0)
  writeFileSync(join(out, 'values.svg'), renderSvg(samplesFrom(h.ops, counters ? 'read' : 'items-count'), h.faults, h.options.nodes, acked, counters ? 'sum of counter values' : 'sum of item counts'))
  for (const p of v.problems.slice(0, 30)) log(`PROBLEM ${p}`)
  process.stdout.write(verdictLine(h, v, resolve(out)) + '\n')
  return v.ok
}

/** `--check FILE`: the same checker on a saved history, the same verdict line and exit code. */
function checkSaved (file: string): never {
  let h: History
  try {
    h = JSON.parse(readFileSync(file, 'utf8')) as History
  } catch (err: any) {
    usage(`cannot read ${file}: ${err.message}`)
  }
  if (h.version !== 1 || !Array.isArray(h.ops)) usage(`${file} is not a chaos history (version 1)`)
  const v = check(h)
  for (const p of v.problems.slice(0, 30)) log(`PROBLEM ${p}`)
  process.stdout.write(verdictLine(h, v, resolve(file)) + '\n')
  process.exit(v.ok ? 0 : 1)
}

async function main (): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  if (o.check !== undefined) checkSaved(o.check)
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
    log(`seed ${o.seed}: ${o.nodes} nodes, ${o.seconds} s, workloads ${o.workloads.join(',')}, nemeses ${o.nemeses.join(',') || 'none'}`)
    await run.start()
    ok = report(await run.go(), o.out)
  } catch (err: any) {
    log(`error: ${err.message}`)
    process.stdout.write(`FAIL error=${JSON.stringify(err.message)}\n`)
  } finally {
    await run.stop()
  }
  process.exit(ok ? 0 : 1)
}

await main()
