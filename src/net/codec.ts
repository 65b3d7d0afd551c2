// Wire encoding for gossip and the direct protocols: CBOR (compact, binary,
// schemaless) via cborg. Everything decoded from the network is validated
// here; a malformed message throws and is dropped by the caller.
import { encode, decode } from 'cborg'
import type { StoredEntry } from '../store/store.js'
import type { Member } from '../replica.js'
import { isValidName } from '../validate.js'

export class ProtocolError extends Error {}

const MAX_U64 = (1n << 64n) - 1n
const REPLICA_ID_RE = /^[1-9A-HJ-NP-Za-km-z]{20,128}$/

/** Counts travel as CBOR integers up to 2^64-1 and as decimal strings beyond. */
function encodeCount (n: bigint): number | bigint | string {
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(n)
  return n <= MAX_U64 ? n : n.toString()
}

function decodeCount (v: unknown): bigint {
  let n: bigint
  if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v)
  else if (typeof v === 'bigint') n = v
  else if (typeof v === 'string' && /^[0-9]{1,400}$/.test(v)) n = BigInt(v)
  else throw new ProtocolError('bad count')
  if (n <= 0n) throw new ProtocolError('bad count')
  return n
}

export function checkReplicaId (v: unknown): string {
  if (typeof v !== 'string' || !REPLICA_ID_RE.test(v)) throw new ProtocolError('bad replica id')
  return v
}

function checkName (v: unknown): string {
  if (typeof v !== 'string' || !isValidName(v)) throw new ProtocolError('bad counter name')
  return v
}

/**
 * Entries as a replica table plus a flat [name, replicaIndex, count, ...]
 * array, so a 52-char replica id is sent once per message, not per entry.
 */
export interface WireEntries { r: string[], e: unknown[] }

export function packEntries (entries: StoredEntry[]): WireEntries {
  const index = new Map<string, number>()
  const r: string[] = []
  const e: unknown[] = []
  for (const { name, replica, count } of entries) {
    let i = index.get(replica)
    if (i === undefined) {
      i = r.length
      index.set(replica, i)
      r.push(replica)
    }
    e.push(name, i, encodeCount(count))
  }
  return { r, e }
}

export function unpackEntries (w: unknown): StoredEntry[] {
  const { r, e } = (w ?? {}) as Partial<WireEntries>
  if (!Array.isArray(r) || !Array.isArray(e) || e.length % 3 !== 0) throw new ProtocolError('bad entries')
  const replicas = r.map(checkReplicaId)
  const out: StoredEntry[] = []
  for (let i = 0; i < e.length; i += 3) {
    const replica = replicas[e[i + 1] as number]
    if (replica === undefined) throw new ProtocolError('bad replica index')
    out.push({ name: checkName(e[i]), replica, count: decodeCount(e[i + 2]) })
  }
  return out
}

// ---- gossip: a batch of the publisher's own deltas ----
// The origin replica is not in the payload: it is the gossipsub message's
// signed `from` (StrictSign), which saves ~55 bytes per message and makes
// speaking for another replica impossible.

export interface DeltaMessage {
  /** Sender's wall clock (ms) when the batch left, for the replication-lag metric. */
  sentAt: number
  /** name -> publisher's full count. */
  deltas: Array<[string, bigint]>
}

export function encodeDelta (m: DeltaMessage): Uint8Array {
  const d: unknown[] = []
  for (const [name, count] of m.deltas) d.push(name, encodeCount(count))
  return encode({ t: m.sentAt, d })
}

export function decodeDelta (bytes: Uint8Array): DeltaMessage {
  const m = safeDecode(bytes) as { t?: unknown, d?: unknown }
  if (m === null || typeof m !== 'object' || !Array.isArray(m.d) || m.d.length % 2 !== 0 || typeof m.t !== 'number') throw new ProtocolError('bad delta')
  const deltas: Array<[string, bigint]> = []
  for (let i = 0; i < m.d.length; i += 2) deltas.push([checkName(m.d[i]), decodeCount(m.d[i + 1])])
  return { sentAt: m.t, deltas }
}

// ---- members ----

export type WireMember = [string, string[], number, number]

export function packMembers (members: Iterable<Member>): WireMember[] {
  return [...members].map(m => [m.id, m.addrs, m.lastSeen, m.retiredAt ?? 0])
}

export function unpackMembers (v: unknown): Member[] {
  if (!Array.isArray(v)) throw new ProtocolError('bad members')
  return v.map((m: any) => {
    if (!Array.isArray(m) || !Array.isArray(m[1]) || typeof m[2] !== 'number' || typeof m[3] !== 'number') throw new ProtocolError('bad member')
    const addrs = m[1].filter((a: unknown): a is string => typeof a === 'string' && a.length < 256).slice(0, 16)
    return { id: checkReplicaId(m[0]), addrs, lastSeen: m[2], ...(m[3] > 0 ? { retiredAt: m[3] } : {}) }
  })
}

// ---- generic frames for the request/response protocols ----

export function encodeFrame (frame: Record<string, unknown>): Uint8Array {
  return encode(frame)
}

export function decodeFrame (bytes: Uint8Array): Record<string, unknown> {
  const f = safeDecode(bytes)
  if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new ProtocolError('bad frame')
  return f as Record<string, unknown>
}

function safeDecode (bytes: Uint8Array): unknown {
  try {
    return decode(bytes)
  } catch (err: any) {
    throw new ProtocolError(`undecodable message: ${err.message}`)
  }
}
