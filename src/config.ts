// Flags and environment -> one typed, validated config object.
import { resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { parsePeerAddr } from './addr.js'

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
  /** Bearer token required on every HTTP route but /health, if set. */
  apiToken?: string
  /** --node-slot: the ID node slot to claim (0-1023); else a free one is chosen. */
  nodeSlot?: number
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
  if (!/^[\x21-\x7e]{16,512}$/.test(t)) throw new UsageError('--api-token must be 16-512 visible ASCII characters')
  return t
}

/** Loopback addresses, where the API is reachable from this machine only. */
export function isLoopbackHost (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
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
  return {
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
    ...(f.apiToken !== undefined && f.apiToken !== '' ? { apiToken: checkToken(f.apiToken) } : {})
  }
}
