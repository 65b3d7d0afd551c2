// Flags and environment -> one typed, validated config object.
import { resolve } from 'node:path'
import { readFileSync } from 'node:fs'
import { isIPv4, isIPv6 } from 'node:net'
import { parse as parseYaml } from 'yaml'
import { multiaddr } from '@multiformats/multiaddr'
import { parsePeerAddr } from './addr.js'

/**
 * Anti-entropy period with each peer. It is the repair path: gossip carries
 * every delta at once, so at a steady write rate most of what a round finds
 * is still in flight by gossip. At 2,000 increments/s on random names
 * (bench section 4, 3 nodes) rounds every 1 s sent 20.9 bytes per increment
 * of the 45.8 total; every 2 s, 9.6 of 31.6. A missed delta is repaired
 * within one period plus a round trip; a (re)connect syncs at once.
 */
export const DEFAULT_SYNC_INTERVAL_MS = 2000

/**
 * Below this many entries a start that replays every entry takes under about
 * half a second (~4.5 µs an entry), so a snapshot while running is not worth
 * its CPU; above it, a quiet node saves one (Daemon.snapshotWhenQuiet).
 */
export const DEFAULT_QUIET_SNAPSHOT_ENTRIES = 100_000

export class UsageError extends Error {}

export interface Config {
  dataDir: string
  httpHost: string
  httpPort: number
  listen: string[]
  peers: string[]
  logLevel: string
  /** Default timeout of GET /counter/:name/consistent_value. */
  consistentTimeoutSec: number
  /** How long own deltas wait to be batched into one gossip message. */
  gossipBatchMs: number
  /** Period of anti-entropy with every connected peer. */
  syncIntervalMs: number
  /** How long an Idempotency-Key is remembered. */
  idempotencyWindowSec: number
  /** Path of a libp2p private-network key (`countd keygen`), if any. */
  swarmKeyFile?: string
  /** Bearer token required on every HTTP route but /health (and by the Redis and gRPC listeners), if set. */
  apiToken?: string
  /** Redis-protocol listener (--resp), off unless given. */
  resp?: { host: string, port: number }
  /** gRPC listener (--grpc), off unless given. */
  grpc?: { host: string, port: number }
  /** Listeners beyond loopback without a token were asked for on purpose. */
  allowUnauthenticated: boolean
  /** --node-slot: the ID node slot to claim (0-1023); else a free one is chosen. */
  nodeSlot?: number
  /** A node with at least this many entries saves a snapshot when it goes quiet (0: only at a clean stop). */
  quietSnapshotEntries: number
  /** How this config was built (for SIGHUP reloads of --config). */
  sources?: ConfigSources
}

/** Raw option values as commander hands them over (flag, env or default). */
export interface StartFlags {
  dataDir: string
  http: string
  listen: string | string[]
  peers?: string | string[]
  logLevel: string
  consistentTimeout: string
  gossipBatchMs: string
  syncIntervalMs: string
  /** Default 86400 (24 h). */
  idempotencyWindow?: string
  swarmKey?: string
  apiToken?: string
  resp?: string
  grpc?: string
  /** true, or env text "1"/"true". */
  allowUnauthenticated?: boolean | string
  nodeSlot?: string
  /** Default 100000. */
  quietSnapshotEntries?: string
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

/** "host:port" (IPv6 as [addr]:port) -> parts; throws UsageError. */
export function parseHostPort (s: string, what: string): { host: string, port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]*):(\d+)$/.exec(s)
  const port = Number(m?.[2])
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`${what} must be HOST:PORT, got "${s}"`)
  }
  return { host: m[1] === '' ? '127.0.0.1' : m[1], port }
}

/** Accept repeated flags and comma-separated lists alike. */
export function splitList (v: string | string[] | undefined): string[] {
  const items = Array.isArray(v) ? v : v === undefined ? [] : [v]
  return items.flatMap(s => s.split(',')).map(s => s.trim()).filter(s => s !== '')
}

function positiveNumber (v: string, what: string, max: number): number {
  const n = Number(v)
  if (!/^[0-9]+(\.[0-9]+)?$/.test(v.trim()) || !(n > 0) || n > max) throw new UsageError(`${what} must be a number in (0, ${max}], got "${v}"`)
  return n
}

function checkToken (t: string): string {
  // Any length is the operator's call (as Redis' requirepass); visible ASCII
  // only, so it fits an Authorization header and a Redis AUTH argument.
  if (!/^[\x21-\x7e]{1,512}$/.test(t)) throw new UsageError('--api-token must be 1-512 visible ASCII characters')
  return t
}

/** Loopback addresses, where the API is reachable from this machine only. */
export function isLoopbackHost (host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost') return true
  if (isIPv4(h)) return h.startsWith('127.')
  if (!isIPv6(h)) return false
  // Every spelling of ::1 and of IPv4-mapped 127/8 (::ffff:127.0.0.1 = ::ffff:7f00:1), as the URL parser writes them.
  const canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1)
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical)
}

function truthy (v: boolean | string | undefined): boolean {
  return v === true || (typeof v === 'string' && ['1', 'true', 'yes'].includes(v.trim().toLowerCase()))
}

function wholeNumber (v: string, what: string): number {
  if (!/^[0-9]{1,15}$/.test(v.trim())) throw new UsageError(`${what} must be a whole number, got "${v}"`)
  return Number(v)
}

function nodeSlotOf (v: string): number {
  if (!/^[0-9]{1,4}$/.test(v.trim()) || Number(v) > 1023) throw new UsageError(`--node-slot must be an integer 0-1023, got "${v}"`)
  return Number(v)
}

/**
 * Safe by default (SPEC §1): a listener reachable beyond this machine with
 * no token would let anyone write. Refuse unless told that is intended.
 */
function checkExposure (c: Config): void {
  if (c.apiToken !== undefined || c.allowUnauthenticated) return
  const open = [
    ['HTTP', `${c.httpHost}:${c.httpPort}`, c.httpHost],
    ...(c.resp !== undefined ? [['Redis', `${c.resp.host}:${c.resp.port}`, c.resp.host]] : []),
    ...(c.grpc !== undefined ? [['gRPC', `${c.grpc.host}:${c.grpc.port}`, c.grpc.host]] : [])
  ].filter(([, , host]) => !isLoopbackHost(host))
  if (open.length === 0) return
  throw new UsageError(`refusing to start: ${open.map(([what, addr]) => `${what} ${addr}`).join(', ')} is reachable beyond this machine without a token; set --api-token TOKEN (or COUNTD_API_TOKEN), or --allow-unauthenticated if anyone who can reach it may write`)
}

export function buildConfig (f: StartFlags): Config {
  const { host, port } = parseHostPort(f.http, '--http')
  const listen = splitList(f.listen)
  if (listen.length === 0) throw new UsageError('--listen needs at least one multiaddr')
  for (const a of listen) {
    if (!a.startsWith('/')) throw new UsageError(`--listen takes multiaddrs like /ip4/0.0.0.0/tcp/7778, got "${a}"`)
    try {
      multiaddr(a)
    } catch (err: any) {
      throw new UsageError(`--listen: invalid multiaddr "${a}": ${err.message}`)
    }
  }
  const peers = splitList(f.peers)
  for (const p of peers) {
    try {
      parsePeerAddr(p)
    } catch (err: any) {
      throw new UsageError(`--peers: ${err.message}`)
    }
  }
  const level = f.logLevel.toLowerCase()
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  if (f.dataDir.trim() === '') throw new UsageError('--data-dir must not be empty')
  const config: Config = {
    dataDir: resolve(f.dataDir),
    httpHost: host,
    httpPort: port,
    listen,
    peers,
    logLevel: level,
    consistentTimeoutSec: positiveNumber(f.consistentTimeout, 'consistent timeout', 300),
    gossipBatchMs: positiveNumber(f.gossipBatchMs, 'gossip batch', 1000),
    syncIntervalMs: positiveNumber(f.syncIntervalMs, 'sync interval', 600000),
    idempotencyWindowSec: positiveNumber(f.idempotencyWindow ?? '86400', 'idempotency window', 365 * 86400),
    ...(f.swarmKey !== undefined && f.swarmKey !== '' ? { swarmKeyFile: resolve(f.swarmKey) } : {}),
    ...(f.apiToken !== undefined && f.apiToken !== '' ? { apiToken: checkToken(f.apiToken) } : {}),
    ...(f.resp !== undefined && f.resp !== '' ? { resp: parseHostPort(f.resp, '--resp') } : {}),
    ...(f.grpc !== undefined && f.grpc !== '' ? { grpc: parseHostPort(f.grpc, '--grpc') } : {}),
    allowUnauthenticated: truthy(f.allowUnauthenticated),
    ...(f.nodeSlot !== undefined && f.nodeSlot !== '' ? { nodeSlot: nodeSlotOf(f.nodeSlot) } : {}),
    quietSnapshotEntries: wholeNumber(f.quietSnapshotEntries ?? String(DEFAULT_QUIET_SNAPSHOT_ENTRIES), '--quiet-snapshot-entries')
  }
  checkExposure(config)
  return config
}

// ---- --config FILE (YAML or JSON) and its reload on SIGHUP ----

/** Keys of a config file: the long names of `countd start`'s flags. */
const FILE_KEYS: Readonly<Record<string, keyof StartFlags>> = {
  'data-dir': 'dataDir',
  http: 'http',
  listen: 'listen',
  peers: 'peers',
  'log-level': 'logLevel',
  'consistent-timeout': 'consistentTimeout',
  'gossip-batch-ms': 'gossipBatchMs',
  'sync-interval-ms': 'syncIntervalMs',
  'idempotency-window': 'idempotencyWindow',
  'swarm-key': 'swarmKey',
  'api-token': 'apiToken',
  resp: 'resp',
  grpc: 'grpc',
  'allow-unauthenticated': 'allowUnauthenticated',
  'node-slot': 'nodeSlot',
  'quiet-snapshot-entries': 'quietSnapshotEntries'
}
const LIST_KEYS = new Set(['listen', 'peers'])

/** Where a config came from, kept so SIGHUP can rebuild it the same way. */
export interface ConfigSources {
  /** The --config file, if any. */
  file?: string
  /** Values given as flags or environment variables: they win over the file. */
  explicit: Partial<StartFlags>
  /** Built-in defaults: the file wins over them. */
  defaults: StartFlags
}

/** Read a YAML or JSON config file into flag values; UsageError for anything wrong, naming the key. */
export function readConfigFile (file: string): Partial<StartFlags> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err: any) {
    throw new UsageError(`--config: cannot read ${file}: ${String(err.code ?? err.message)}`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err: any) {
    throw new UsageError(`--config ${file}: not YAML or JSON: ${String(err.message).split('\n')[0]}`)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`--config ${file}: must be a mapping of flag names to values`)
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const flag = FILE_KEYS[key]
    if (flag === undefined) throw new UsageError(`--config ${file}: unknown key "${key}" (keys are the long flag names: ${Object.keys(FILE_KEYS).join(', ')})`)
    if (LIST_KEYS.has(key) && Array.isArray(value) && value.every(v => typeof v === 'string')) {
      out[flag] = value
    } else if (key === 'allow-unauthenticated' && typeof value === 'boolean') {
      out[flag] = value
    } else if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) {
      out[flag] = String(value)
    } else {
      throw new UsageError(`--config ${file}: "${key}" must be ${LIST_KEYS.has(key) ? 'a string or a list of strings' : 'a string or a number'}`)
    }
  }
  return out as Partial<StartFlags>
}

/** Defaults, then the file, then flags and environment; validated. */
export function loadConfig (sources: ConfigSources): Config {
  const fromFile = sources.file !== undefined ? readConfigFile(sources.file) : {}
  const config = buildConfig({ ...sources.defaults, ...fromFile, ...sources.explicit })
  return { ...config, sources }
}

/** Settings that only take effect at start; SIGHUP logs a change to them and leaves them. */
const RESTART_KEYS: ReadonlyArray<[string, (c: Config) => unknown]> = [
  ['data-dir', c => c.dataDir],
  ['http', c => `${c.httpHost}:${c.httpPort}`],
  ['listen', c => c.listen.join(',')],
  ['resp', c => c.resp === undefined ? '' : `${c.resp.host}:${c.resp.port}`],
  ['grpc', c => c.grpc === undefined ? '' : `${c.grpc.host}:${c.grpc.port}`],
  ['swarm-key', c => c.swarmKeyFile ?? ''],
  ['gossip-batch-ms', c => c.gossipBatchMs],
  ['sync-interval-ms', c => c.syncIntervalMs],
  ['node-slot', c => c.nodeSlot ?? ''],
  ['quiet-snapshot-entries', c => c.quietSnapshotEntries]
]

/**
 * Re-read the config file (SIGHUP). Returns the config to run with now:
 * live settings (log level, API token, peers, consistent timeout,
 * idempotency window) from the file, the rest as running, and the keys that
 * changed but need a restart. Throws UsageError for a bad file: the caller
 * logs it and keeps the running config.
 */
export function reloadConfig (file: string, current: Config): { config: Config, needsRestart: string[] } {
  if (current.sources === undefined) throw new UsageError('this node was not started with --config')
  const sources: ConfigSources = { ...current.sources, file }
  const next = loadConfig(sources)
  const needsRestart = RESTART_KEYS.filter(([, get]) => get(next) !== get(current)).map(([key]) => key)
  return {
    config: {
      ...current,
      sources,
      logLevel: next.logLevel,
      apiToken: next.apiToken,
      peers: next.peers,
      consistentTimeoutSec: next.consistentTimeoutSec,
      idempotencyWindowSec: next.idempotencyWindowSec,
      allowUnauthenticated: next.allowUnauthenticated
    },
    needsRestart
  }
}
