// Shared helpers of the benchmark: statistics, progress, ports, child
// process bookkeeping (everything started is killed on exit or Ctrl-C),
// small HTTP helpers and /proc readers.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request as httpRequest } from 'node:http'
import { Cluster, CountdNode, type ClusterOptions } from '../cluster.js'
import type { Row } from './types.js'

// ---------- statistics ----------

export function median (xs: number[]): number {
  const v = xs.filter(x => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const m = v.length >> 1
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2
}

/** Nearest-rank percentile (p in 0..100) of an unsorted sample. */
export function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const v = [...xs].sort((a, b) => a - b)
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))
  return v[rank]
}

export const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))
export const now = (): number => performance.now()

// ---------- progress (stderr) ----------

const benchStart = Date.now()
let section = ''
export function setSection (s: string): void { section = s }
export function progress (msg: string): void {
  const t = (Date.now() - benchStart) / 1000
  const mm = String(Math.floor(t / 60)).padStart(2, '0')
  const ss = (t % 60).toFixed(1).padStart(4, '0')
  process.stderr.write(`[bench ${mm}:${ss}]${section !== '' ? ` ${section}:` : ''} ${msg}\n`)
}

// ---------- ports (31000-31999 only) ----------

const PORT_LO = 31000
const PORT_HI = 31999
let cursor = PORT_LO + Math.floor(Math.random() * 50) * 10

async function portFree (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/** `size` consecutive free ports in 31000-31999 (never reused within one bench run unless it wraps). */
export async function portBlock (size: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (cursor + size - 1 > PORT_HI) cursor = PORT_LO
    const base = cursor
    cursor += size
    let ok = true
    for (let p = base; p < base + size && ok; p++) ok = await portFree(p)
    if (ok) return base
  }
  throw new Error('no free port block in 31000-31999')
}

// ---------- child processes and temp dirs: all cleaned up on exit ----------

const children = new Set<ChildProcess>()
const nodes = new Set<CountdNode>()
const dirs = new Set<string>()

export function track (p: ChildProcess): ChildProcess {
  children.add(p)
  p.once('exit', () => children.delete(p))
  return p
}

export function tempDir (tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `countd-bench-${tag}-`))
  dirs.add(d)
  return d
}

export function removeDir (d: string): void {
  rmSync(d, { recursive: true, force: true })
  dirs.delete(d)
}

function killAll (): void {
  for (const n of nodes) {
    if (n.running) {
      try { n.proc!.kill('SIGCONT') } catch {}
      try { n.proc!.kill('SIGKILL') } catch {}
    }
  }
  for (const c of children) {
    try { c.kill('SIGKILL') } catch {}
  }
  for (const d of dirs) {
    try { rmSync(d, { recursive: true, force: true }) } catch {}
  }
}

let handlersInstalled = false
export function installCleanup (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping child processes\n`)
      killAll()
      process.exit(130)
    })
  }
}

/** Extra environment for every countd process. */
export const countdEnv: Record<string, string> = {}
/** Command prefix for every countd process (see profileCountd). */
let countdWrap: string[] | undefined
/** Stop nodes gracefully (needed for --cpu-prof to write its profile). */
export let gracefulStop = false

/**
 * Run every countd under `node --cpu-prof` (not allowed in NODE_OPTIONS):
 * a shell prefix re-execs the node binary with the flag, keeping the pid.
 */
export function profileCountd (dir: string): void {
  countdWrap = ['/bin/sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir='${dir.replace(/'/g, '')}' "$@"`]
  gracefulStop = true
}

export function trackNode (n: CountdNode): CountdNode {
  nodes.add(n)
  return n
}

/** A countd cluster on ports from our range, in a temp dir; nodes tracked for cleanup. */
export async function startCluster (n: number, extra: Partial<ClusterOptions> = {}): Promise<Cluster> {
  const base = await portBlock(2 * n)
  const dir = tempDir('cluster')
  const cluster = await Cluster.start({ nodes: n, httpBase: base, p2pBase: base + n, dir, logLevel: 'info', env: { ...countdEnv }, wrap: countdWrap, ...extra })
  for (const node of cluster.nodes) trackNode(node)
  return cluster
}

export async function stopCluster (c: Cluster): Promise<void> {
  if (gracefulStop) await Promise.all(c.nodes.map(async n => await n.stop()))
  await c.stop(true)
  dirs.delete(c.dir)
  for (const n of c.nodes) nodes.delete(n)
}

/** A single countd node (not joined to anything unless `peers`). */
export async function makeNode (name: string, dataDir: string, peers: string[] = [], args: string[] = []): Promise<CountdNode> {
  const base = await portBlock(2)
  return trackNode(new CountdNode({ name, dataDir, httpPort: base, p2pPort: base + 1, peers, args, logLevel: 'info', env: { ...countdEnv }, wrap: countdWrap }))
}

export async function stopNode (n: CountdNode): Promise<void> {
  if (gracefulStop) await n.stop()
  await n.kill('SIGKILL')
}

/** Wait until each node reports at least `min` connected peers. */
export async function waitPeers (ns: CountdNode[], min: number, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (const n of ns) {
    for (;;) {
      try {
        const s = await getJson(`${n.url}/status`) as { peers?: unknown[] }
        if ((s.peers?.length ?? 0) >= min) break
      } catch {}
      if (Date.now() > deadline) throw new Error(`${n.name}: fewer than ${min} peers after ${timeoutMs} ms`)
      await sleep(50)
    }
  }
}

/**
 * Wait until the node acknowledges an increment (a node that belongs to a
 * cluster refuses writes with 503 until a peer has synced with it).
 */
export async function waitWritable (n: CountdNode, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await http('POST', `${n.url}/counter/bench-ready`, '1', { 'content-type': 'text/plain' })
    if (r.status === 200) return
    if (Date.now() > deadline) throw new Error(`${n.name}: not writable after ${timeoutMs} ms: ${r.status} ${r.body}`)
    await sleep(50)
  }
}

/** Poll `check` (errors count as false) until true: the time (now()) it was first true, NaN after `timeoutMs`. */
export async function waitUntil (check: () => Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<number> {
  const t0 = now()
  while (now() - t0 < timeoutMs) {
    try { if (await check()) return now() } catch {}
    await sleep(intervalMs)
  }
  return NaN
}

// ---------- HTTP (keep-alive agent, lower overhead than fetch for tight polling) ----------

export const agent = new Agent({ keepAlive: true, maxSockets: 256 })

export async function http (method: string, url: string, body?: string, headers: Record<string, string> = {}, timeoutMs = 30000): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent, headers: body !== undefined ? { 'content-length': String(Buffer.byteLength(body)), ...headers } : headers, timeout: timeoutMs }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)))
    req.on('error', reject)
    req.end(body)
  })
}

export async function getJson (url: string): Promise<unknown> {
  const r = await http('GET', url)
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${r.body.slice(0, 200)}`)
  return JSON.parse(r.body)
}

export async function getValue (url: string, name: string): Promise<bigint> {
  const r = await http('GET', `${url}/counter/${name}/value`)
  if (r.status !== 200) throw new Error(`value ${name}: ${r.status}`)
  return BigInt(r.body)
}

export async function postInc (url: string, name: string, by = 1): Promise<bigint> {
  const r = await http('POST', `${url}/counter/${name}`, String(by), { 'content-type': 'text/plain' })
  if (r.status !== 200) throw new Error(`inc ${name}: ${r.status} ${r.body}`)
  return BigInt(r.body)
}

/** Prometheus text -> map of "name{labels}" -> value. */
export async function scrape (url: string): Promise<Map<string, number>> {
  const r = await http('GET', `${url}/metrics`)
  const m = new Map<string, number>()
  if (r.status !== 200) return m
  for (const line of r.body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    m.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return m
}

/**
 * Apply increments {name: n} with POST /counters in chunks below the 64 KiB
 * body limit, `parallel` requests in flight; falls back to single POSTs
 * if the batch endpoint is missing. Returns whether the batch endpoint was used.
 */
export async function bulkIncrement (url: string, entries: Array<[string, number]>, parallel = 3, maxBodyBytes = 60000): Promise<boolean> {
  const bodies: string[] = []
  let parts: string[] = []
  let size = 2
  for (const [name, n] of entries) {
    const part = `${JSON.stringify(name)}:${n}`
    if (size + part.length + 1 > maxBodyBytes || parts.length >= 10000) {
      bodies.push(`{${parts.join(',')}}`)
      parts = []
      size = 2
    }
    parts.push(part)
    size += part.length + 1
  }
  if (parts.length > 0) bodies.push(`{${parts.join(',')}}`)
  let batch = true
  let next = 0
  const worker = async (): Promise<void> => {
    while (batch && next < bodies.length) {
      const body = bodies[next++]
      const r = await http('POST', `${url}/counters`, body, { 'content-type': 'application/json' }, 120000)
      if (r.status === 404 || r.status === 405) { batch = false; return }
      if (r.status !== 200) throw new Error(`POST /counters: ${r.status} ${r.body.slice(0, 200)}`)
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  if (batch) return true
  // Fallback: one POST per name, 64 in flight (names of failed batch bodies included: none succeeded).
  let i = 0
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (i < entries.length) {
      const [name, n] = entries[i++]
      await postInc(url, name, n)
    }
  }))
  return false
}

// ---------- /proc, du, ss ----------

export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) * 1024
}

export function dirBytes (dir: string): number {
  let total = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += dirBytes(p)
    else if (e.isFile()) total += statSync(p).size
  }
  return total
}

/**
 * TCP payload bytes sent so far on every socket with a local or remote port
 * in `ports` (from `ss -tin`: bytes_sent per socket). On loopback both ends
 * of a connection show up, each with what it sent, so the sum counts every
 * byte once. Returns NaN if `ss` is unavailable.
 */
export function tcpBytesSent (ports: number[]): number {
  const filter = ports.map(p => `sport = :${p} or dport = :${p}`).join(' or ')
  let out: string
  try {
    out = execFileSync('ss', ['-tinH', filter], { encoding: 'utf8' })
  } catch {
    return NaN
  }
  let total = 0
  for (const m of out.matchAll(/bytes_sent:(\d+)/g)) total += Number(m[1])
  return total
}

/** What a set of nodes has sent so far: TCP payload (ss), libp2p stream bytes (total and per protocol) and the sum of one countd metric. */
export interface WireSnapshot { tcp: number, libp2p: number, perProto: Map<string, number>, count: number }

/**
 * Snapshot of the bytes sent by `nodes` (sections 4 and 10): TCP payload on
 * their p2p ports from `ss -tin` (NaN when `ss` is missing: pass hasSs()),
 * libp2p_data_transfer_bytes_total{protocol="global sent"} and per protocol
 * from /metrics, and the sum over the nodes of `countMetric` (what the bytes
 * are divided by: increments, items added).
 */
export async function wireSnapshot (nodes: CountdNode[], countMetric: string, ss: boolean): Promise<WireSnapshot> {
  const ms = await Promise.all(nodes.map(async n => await scrape(n.url)))
  const perProto = new Map<string, number>()
  let libp2p = 0
  let count = 0
  for (const m of ms) {
    libp2p += m.get('libp2p_data_transfer_bytes_total{protocol="global sent"}') ?? NaN
    count += m.get(countMetric) ?? NaN
    for (const [k, v] of m) {
      const p = /^libp2p_data_transfer_bytes_total\{protocol="(\S+) sent"\}$/.exec(k)
      if (p !== null && p[1] !== 'global') perProto.set(p[1], (perProto.get(p[1]) ?? 0) + v)
    }
  }
  return { libp2p, tcp: ss ? tcpBytesSent(nodes.map(n => n.opts.p2pPort)) : NaN, count, perProto }
}

/** Bytes sent between two snapshots, per unit (units: the count delta, or a fallback when the metric is missing). */
export function wirePerUnit (a: WireSnapshot, b: WireSnapshot, fallbackUnits: number): { units: number, tcp: number, libp2p: number, perProto: Record<string, number> } {
  const units = Number.isFinite(b.count - a.count) ? b.count - a.count : fallbackUnits
  const perProto: Record<string, number> = {}
  for (const [k, v] of b.perProto) perProto[k] = (v - (a.perProto.get(k) ?? 0)) / units
  return { units, tcp: (b.tcp - a.tcp) / units, libp2p: (b.libp2p - a.libp2p) / units, perProto }
}

/** "  of which <protocol>" rows: the median per-unit bytes of each libp2p protocol over the runs (those of at least 0.05). */
export function perProtoRows (section: string, runs: Array<{ perProto: Record<string, number> }>, unit: string): Row[] {
  const rows: Row[] = []
  for (const p of new Set(runs.flatMap(x => Object.keys(x.perProto)))) {
    const val = median(runs.map(x => x.perProto[p] ?? 0))
    if (val >= 0.05) rows.push({ section, metric: `  of which ${p}`, value: val, unit })
  }
  return rows
}

export function hasSs (): boolean {
  try {
    execFileSync('ss', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Spawn a node script of ours (compiled .js next to this file) as a tracked child. */
export function spawnScript (file: string, args: string[], opts: { ipc?: boolean } = {}): ChildProcess {
  const p = spawn(process.execPath, [file, ...args], { stdio: opts.ipc === true ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'] })
  return track(p)
}
