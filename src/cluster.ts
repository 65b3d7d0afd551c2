// Start and control real `countd` processes on this machine. Shared by the
// integration tests, the chaos harness, the benchmarks and `countd demo`.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packageRoot } from './paths.js'
import { createInterface } from 'node:readline'

/** Repo root, from `dist/src/` (compiled) or the bundle alike. */
export const repoRoot = packageRoot
export const countdBin = join(repoRoot, 'bin', 'countd')
/** The node flags of bin/countd's first line (`#!/usr/bin/env -S node FLAGS`): a node spawned as `node bin/countd` gets them too. */
export const countdNodeFlags: string[] = (/\bnode\b(.*)$/.exec(readFileSync(countdBin, 'utf8').split('\n')[0])?.[1] ?? '').trim().split(/\s+/).filter(f => f !== '')

export interface NodeOptions {
  /** Human name used in logs ("n1"). */
  name: string
  dataDir: string
  httpHost?: string
  httpPort: number
  p2pHost?: string
  p2pPort: number
  peers?: string[]
  /** Extra CLI flags for `countd start`. */
  args?: string[]
  env?: Record<string, string>
  /** Command prefix, e.g. ['ip', 'netns', 'exec', 'ns1'] for the chaos harness. */
  wrap?: string[]
  /** Called with every stdout/stderr line of the node (default: dropped). */
  onLine?: (line: string) => void
  logLevel?: string
}

export class CountdNode {
  proc: ChildProcess | undefined
  peerId = ''
  exitCode: number | null = null
  private exited: Promise<void> = Promise.resolve()

  constructor (readonly opts: NodeOptions) {}

  get name (): string { return this.opts.name }
  get url (): string { return `http://${this.opts.httpHost ?? '127.0.0.1'}:${this.opts.httpPort}` }
  get p2pAddr (): string { return `/ip4/${this.opts.p2pHost ?? '127.0.0.1'}/tcp/${this.opts.p2pPort}` }
  get hostPort (): string { return `${this.opts.p2pHost ?? '127.0.0.1'}:${this.opts.p2pPort}` }
  get running (): boolean { return this.proc !== undefined && this.exitCode === null }

  /** Authorization header if the node runs with --api-token. */
  authHeaders (): Record<string, string> {
    const args = this.opts.args ?? []
    const i = args.indexOf('--api-token')
    return i === -1 ? {} : { Authorization: `Bearer ${args[i + 1]}` }
  }

  /** Spawn the process and resolve once it logged its `ready` line (or, at quieter log levels, its API answers). */
  async start (timeoutMs = 20000): Promise<void> {
    const o = this.opts
    mkdirSync(o.dataDir, { recursive: true })
    const args = [countdBin, 'start',
      '--data-dir', o.dataDir,
      '--http', `${o.httpHost ?? '127.0.0.1'}:${o.httpPort}`,
      '--listen', `/ip4/${o.p2pHost ?? '127.0.0.1'}/tcp/${o.p2pPort}`,
      '--log-level', o.logLevel ?? 'info',
      ...(o.peers !== undefined && o.peers.length > 0 ? ['--peers', o.peers.join(',')] : []),
      ...(o.args ?? [])]
    const cmd = [...(o.wrap ?? []), process.execPath, ...countdNodeFlags, ...args]
    const proc = spawn(cmd[0], cmd.slice(1), {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.proc = proc
    this.exitCode = null
    this.exited = new Promise(resolve => proc.once('exit', (code, sig) => {
      this.exitCode = code ?? (sig !== null ? 128 : 1)
      resolve()
    }))
    const stderr: string[] = []
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${o.name}: not ready after ${timeoutMs} ms\n${stderr.join('\n')}`)), timeoutMs)
      createInterface({ input: proc.stdout! }).on('line', line => {
        o.onLine?.(line)
        if (line.includes('"msg":"ready"')) {
          try { this.peerId = JSON.parse(line).peerId } catch {}
          clearTimeout(timer)
          resolve()
        }
      })
      createInterface({ input: proc.stderr! }).on('line', line => {
        stderr.push(line)
        o.onLine?.(line)
      })
      void this.exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`${o.name}: exited with ${this.exitCode} before ready\n${stderr.join('\n')}`))
      })
      // The ready line is logged at info: below that, ask the API instead.
      if (!['trace', 'debug', 'info', undefined].includes(o.logLevel)) {
        void (async () => {
          while (this.proc === proc && this.exitCode === null) {
            try {
              const res = await fetch(`${this.url}/status`, { signal: AbortSignal.timeout(500), headers: this.authHeaders() })
              if (res.status === 200) {
                this.peerId = (await res.json() as { id: string }).id
                clearTimeout(timer)
                resolve()
                return
              }
            } catch {}
            await new Promise(resolve => setTimeout(resolve, 50))
          }
        })()
      }
    })
    await ready
  }

  /** Send a signal; for SIGKILL/SIGTERM wait for the exit. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return
    this.proc!.kill(signal)
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await this.exited
  }

  pause (): void { if (this.running) this.proc!.kill('SIGSTOP') }
  resume (): void { if (this.running) this.proc!.kill('SIGCONT') }

  /** Graceful stop (SIGTERM); returns the exit code. */
  async stop (): Promise<number | null> {
    if (!this.running) return this.exitCode
    this.resume()
    await this.kill('SIGTERM')
    return this.exitCode
  }

  async restart (): Promise<void> {
    await this.kill('SIGKILL')
    await this.start()
  }

  /** Remove the data dir (the node must be stopped). */
  wipe (): void { rmSync(this.opts.dataDir, { recursive: true, force: true }) }
}

export interface ClusterOptions {
  nodes: number
  /** First HTTP port; node i gets httpBase+i and p2pBase+i. Default: random-ish free range. */
  httpBase?: number
  p2pBase?: number
  dir?: string
  args?: string[]
  /** Extra flags for node i (0-based), after `args`. */
  argsFor?: (i: number) => string[]
  env?: Record<string, string>
  logLevel?: string
  onLine?: (node: string, line: string) => void
  /** Command prefix for every node (see NodeOptions.wrap). */
  wrap?: string[]
}

// Test ports stay below the kernel's ephemeral range: a port in it can be
// taken, between a node's kill and its restart, by any outgoing connection
// (a libp2p dial, an HTTP client), which CI once saw as "address in use".
const ephemeralLow = ((): number => {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 12000 ? low : 32768
  } catch { return 32768 }
})()
const PORT_FLOOR = 10000
// COUNTD_TEST_PORT_BASE pins the range (parallel work on one machine).
let portCursor = Number(process.env.COUNTD_TEST_PORT_BASE ?? 0) ||
  PORT_FLOOR + Math.floor(Math.random() * (ephemeralLow - PORT_FLOOR) / 2)
/** A block of ports unlikely to collide between concurrent test files, below the ephemeral range. */
export function portBlock (size: number): number {
  if (portCursor + size >= ephemeralLow) portCursor = PORT_FLOOR
  const base = portCursor
  portCursor += size
  return base
}

export class Cluster {
  constructor (readonly nodes: CountdNode[], readonly dir: string) {}

  /** Start every node: node 0 first, then the rest joining node 0 only. */
  static async start (o: ClusterOptions): Promise<Cluster> {
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'countd-cluster-'))
    const httpBase = o.httpBase ?? portBlock(o.nodes)
    const p2pBase = o.p2pBase ?? portBlock(o.nodes)
    const nodes: CountdNode[] = []
    for (let i = 0; i < o.nodes; i++) {
      nodes.push(new CountdNode({
        name: `n${i + 1}`,
        dataDir: join(dir, `n${i + 1}`),
        httpPort: httpBase + i,
        p2pPort: p2pBase + i,
        peers: i === 0 ? [] : [`127.0.0.1:${p2pBase}`],
        args: [...(o.args ?? []), ...(o.argsFor?.(i) ?? [])],
        env: o.env,
        logLevel: o.logLevel,
        wrap: o.wrap,
        onLine: o.onLine !== undefined ? line => o.onLine!(`n${i + 1}`, line) : undefined
      }))
    }
    const cluster = new Cluster(nodes, dir)
    try {
      await nodes[0].start()
      await Promise.all(nodes.slice(1).map(async n => await n.start()))
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  async stop (removeDir = true): Promise<void> {
    await Promise.all(this.nodes.map(async n => await n.kill('SIGKILL')))
    if (removeDir) rmSync(this.dir, { recursive: true, force: true })
  }
}

// ---- tiny HTTP client helpers (fetch is built into Node 20) ----

export async function inc (url: string, name: string, by: number | bigint = 1, timeoutMs = 5000): Promise<bigint> {
  const res = await fetch(`${url}/counter/${name}`, { method: 'POST', body: String(by), signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`inc ${name} on ${url}: ${res.status} ${text}`)
  return BigInt(text)
}

export async function value (url: string, name: string, timeoutMs = 5000): Promise<bigint> {
  const res = await fetch(`${url}/counter/${name}/value`, { signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`value ${name} on ${url}: ${res.status} ${text}`)
  return BigInt(text)
}

/** Poll until `check` returns true or the deadline passes; returns elapsed ms. */
export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs = 10000, intervalMs = 20): Promise<number> {
  const start = Date.now()
  let lastErr: unknown
  while (Date.now() - start < timeoutMs) {
    try {
      if (await check()) return Date.now() - start
    } catch (err) { lastErr = err }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  throw new Error(`condition not met within ${timeoutMs} ms${lastErr !== undefined ? `: ${String(lastErr)}` : ''}`)
}
