// The wire format of countd, declared in one place: protocol ids, the frame
// of every message, the version, the size limit and the codec (CBOR via
// cborg). Everything decoded from the network is validated here; a malformed
// frame throws ProtocolError and is dropped by the caller, never crashes it.
//
// Version 2 (this file). Every entry travels tagged with its dataset
// (src/crdt/dataset.ts), so one codec carries counters, items and slots.
//
// Entries ("groups"), used by every message below:
//   s: [sub, ...]                   table of subs that repeat (replica ids)
//   g: {tag: [key, n, sub_1, value_1, ..., sub_n, value_n, key, n, ...], ...}
//      sub   = index into s (datasets whose sub is a replica), else the sub itself
//      value = CBOR uint up to 2^64-1, decimal string beyond
//   In gossip, datasets whose sub is the signer (counters) send one entry per
//   key, {tag: [key, value, key, value, ...]}: the sub is the signed sender.
//
// Gossip (topic /countd/deltas/3, signed, StrictSign; the topic names the version):
//   {t: sentAt ms, g}                           the publisher's own new entries
//   {t: sentAt ms, z: deflate-raw(CBOR of g), w?: window bits (9-15, default 15)}   the same, when g is 256 bytes or more
// Anti-entropy (/countd/sync/2), one exchange per stream:
//   I->R {k:'hello', v:2, id, a: addrs, n: #entries, h: root hash, b?: entry budget, p?: {d, n: [nodes]} (a continuation: what it will name), m?: members}
//   R->I {k:'hello', v:2, id, a, n, x: bitset of differing roots, f?: 1 (takes 'eh'), m?}
//   I->R {k:'h', h: hashes of the children of differing nodes}   } per level
//   R->I {k:'x', x: bitset}                                       }
//   I->R {k:'e', d: depth, n: [nodes], s, g, end}  initiator's entries under the differing nodes (chunked)
//   R->I {k:'e', s, g, end}                        only what the initiator lacks (chunked)
//   or I->R {k:'done'} when nothing differs. The next exchange of a repair
//   over the budget names the subtrees its descent left (no 'h' steps) or,
//   in a sweep, the next ones: its 'e' or 'eh' follows the hellos.
//   The last two steps by fingerprints, when the responder's hello says f: 1
//   and the named nodes hold several entries each (10M items: ~10 a leaf,
//   so a whole-subtree swap sent ~17 entries a missing item):
//   I->R {k:'eh', d, n, c: #entries, h: the 8-byte hash (DatasetKind.hashOf) of each of the initiator's entries under them}
//   R->I {k:'e', x: bitset over those hashes, set = the responder lacks it, s, g, end}   the responder's entries whose hash was not sent (chunked, x on the first)
//   I->R {k:'e', s, g, end}                        the initiator's entries x names (chunked)
// Consistent read of one key (/countd/read/2):
//   I->R {k:'read', v:2, ds: tag, key}
//   R->I {k:'state', s, g, m: members}
// members: [[id, [addr, ...], lastSeen ms, retiredAt ms (0 = never)], ...]
import { encode, decode, Tokenizer, Type, type Token } from 'cborg'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import type { DatasetKind, Entry } from '../crdt/dataset.js'
import type { MemberRecord } from '../store/store.js'
import { isReplicaId } from '../validate.js'
import { typedView, bytesOf } from '../util/bytes.js'

export const WIRE_VERSION = 2
export const SYNC_PROTOCOL = '/countd/sync/2'
export const READ_PROTOCOL = '/countd/read/2'
/**
 * Version 3 of the topic: deltas may be deflated ({t, z}). A node of the
 * previous build stays on /countd/deltas/2, so during a rolling upgrade old
 * and new nodes replicate by anti-entropy only (sync and read are unchanged).
 */
export const DELTA_TOPIC = '/countd/deltas/3'
/** Protocols of wire versions this node does not speak: answered with a log line, never read. */
export const OLD_PROTOCOLS = ['/countd/sync/1', '/countd/read/1']
/** The one frame-size limit of every protocol. */
export const MAX_FRAME = 32 * 1024 * 1024

/**
 * lpStream options for frames of up to `max` bytes. libp2p's byte stream
 * buffers at most 4 MiB unless told otherwise, so a larger frame (the
 * digest hashes of a descent that differs almost everywhere: 5.7 MB when a
 * node catches up 300,000 names) reset the stream of every exchange and the
 * catch-up never finished.
 */
export function lpOptions (max = MAX_FRAME): { maxDataLength: number, maxBufferSize: number } {
  return { maxDataLength: max, maxBufferSize: max + 16 }
}
/** Entries per sync frame (keeps each frame far below MAX_FRAME). */
export const ENTRIES_PER_FRAME = 10000

export class ProtocolError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ProtocolError'
  }
}

/** Looks a dataset up by tag; the replica's registry implements it. */
export type KindLookup = (tag: string) => DatasetKind | undefined

const MAX_U64 = (1n << 64n) - 1n

export function checkReplicaId (v: unknown): string {
  if (typeof v !== 'string' || !isReplicaId(v)) throw new ProtocolError('bad replica id')
  return v
}

/** Counts travel as CBOR integers up to 2^64-1 and as decimal strings beyond. */
function encodeValue (n: bigint): number | bigint | string {
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(n)
  return n <= MAX_U64 ? n : n.toString()
}

function decodeValue (v: unknown): bigint {
  let n: bigint
  if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v)
  else if (typeof v === 'bigint') n = v
  else if (typeof v === 'string' && /^[0-9]{1,400}$/.test(v)) n = BigInt(v)
  else throw new ProtocolError('bad value')
  if (n <= 0n) throw new ProtocolError('bad value')
  return n
}

// ---- entries ----

/** Subs that repeat (replica ids) once per frame; entries grouped by dataset, then key. */
export interface WireEntries { s: string[], g: Record<string, unknown[]> }

/**
 * Entries grouped by dataset and key. With `origin` (gossip), the subs of
 * datasets whose sub is the signer are left out.
 */
export function packEntries (entries: Entry[], lookup: KindLookup, origin?: string): WireEntries {
  const table = new Map<string, number>()
  const s: string[] = []
  const byTag = new Map<string, Map<string, Entry[]>>()
  for (const e of entries) {
    let byKey = byTag.get(e.ds)
    if (byKey === undefined) byTag.set(e.ds, byKey = new Map())
    const list = byKey.get(e.key)
    if (list === undefined) byKey.set(e.key, [e])
    else list.push(e)
  }
  const g: Record<string, unknown[]> = {}
  for (const [tag, byKey] of byTag) {
    const kind = lookup(tag)
    if (kind === undefined) throw new ProtocolError(`unknown dataset ${tag}`)
    const implicit = origin !== undefined && kind.subIsOrigin
    const flat: unknown[] = g[tag] = []
    for (const [key, list] of byKey) {
      // Implicit subs: one entry per key (the publisher's), no group size.
      if (implicit) {
        if (list.length !== 1 || list[0].sub !== origin) throw new ProtocolError('gossip carries one entry per key, the publisher\'s own')
        flat.push(key, encodeValue(list[0].value))
        continue
      }
      flat.push(key, list.length)
      for (const e of list) {
        if (kind.subIsOrigin) {
          let i = table.get(e.sub)
          if (i === undefined) {
            i = s.length
            table.set(e.sub, i)
            s.push(e.sub)
          }
          flat.push(i)
        } else {
          flat.push(e.sub)
        }
        flat.push(encodeValue(e.value))
      }
    }
  }
  return { s, g }
}

export function unpackEntries (w: unknown, lookup: KindLookup, origin?: string): Entry[] {
  const { s, g } = (w ?? {}) as Partial<WireEntries>
  if (g === null || typeof g !== 'object' || Array.isArray(g) || (s !== undefined && !Array.isArray(s))) throw new ProtocolError('bad entries')
  const out: Entry[] = []
  for (const [tag, flat] of Object.entries(g)) {
    const kind = lookup(tag)
    if (kind === undefined) throw new ProtocolError(`unknown dataset ${tag}`)
    if (!Array.isArray(flat)) throw new ProtocolError('bad entries')
    const implicit = origin !== undefined && kind.subIsOrigin
    // Subs from the table repeat (a replica id per entry): each is checked once per dataset.
    const tableChecked = new Uint8Array(s?.length ?? 0)
    let i = 0
    while (i < flat.length) {
      const key = flat[i]
      // Implicit subs (gossip of counters): [key, value] pairs.
      const n = implicit ? 1 : flat[i + 1]
      i += implicit ? 1 : 2
      if (typeof key !== 'string' || !kind.isKey(key)) throw new ProtocolError(`bad ${kind.name} key`)
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > flat.length) throw new ProtocolError('bad group size')
      for (let k = 0; k < n; k++) {
        let sub: unknown = origin
        let checked = false
        if (!implicit) {
          sub = flat[i++]
          if (typeof sub === 'number') {
            checked = tableChecked[sub] === 1
            tableChecked[sub] = 1 // set before the check below: a bad one throws
            sub = s?.[sub]
          }
        }
        if (!checked && (typeof sub !== 'string' || !kind.isSub(sub))) throw new ProtocolError(`bad ${kind.name} sub`)
        if (i >= flat.length) throw new ProtocolError('truncated entries')
        const value = decodeValue(flat[i++])
        if (!kind.isValue(value)) throw new ProtocolError(`bad ${kind.name} value`)
        out.push({ ds: tag, key, sub: sub as string, value })
      }
    }
  }
  return out
}

// ---- gossip ----

export interface DeltaMessage {
  /** Sender's wall clock (ms) when the batch left, for the replication-lag metric. */
  sentAt: number
  entries: Entry[]
}

/**
 * Groups of a delta at least this big (CBOR bytes) travel deflated: names
 * and ids of one batch share prefixes and tenants, so a batch of 50 items
 * of 20 bytes shrank from 24 to 5-10 bytes an item, while a small delta
 * would only pay zlib's set-up on both sides.
 */
const DEFLATE_FROM_BYTES = 256
/** Deltas of at most this many CBOR bytes are deflated with a 2^SMALL_WINDOW_BITS byte window. */
const SMALL_WINDOW_UP_TO = 16 << 10
const SMALL_WINDOW_BITS = 10

/** The inflate window of a delta's `w` (9-15; absent: 15, what senders before `w` used). */
function windowOf (w: unknown): number {
  if (w === undefined) return 15
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 9 || w > 15) throw new ProtocolError('bad delta window')
  return w
}

/** A publisher's own new entries; `origin` is the publisher (the signer). */
export function encodeDelta (m: DeltaMessage, lookup: KindLookup, origin: string): Uint8Array {
  // No version field: the topic name carries it (/countd/deltas/3).
  const g = packEntries(m.entries, lookup, origin).g
  const plain = encode(g)
  if (plain.length >= DEFLATE_FROM_BYTES) {
    // A small delta gets a small window: zlib's set-up of a 32 KiB window
    // was most of its cost (a 350-byte delta: 102 -> 24 us to deflate, 40 ->
    // 14 to inflate, same size). `w` tells the receiver; without it, 15.
    const w = plain.length <= SMALL_WINDOW_UP_TO ? SMALL_WINDOW_BITS : undefined
    const z = deflateRawSync(plain, w === undefined ? { level: 1 } : { level: 1, windowBits: w, memLevel: 2 })
    if (z.length < plain.length) return encode(w === undefined ? { t: m.sentAt, z } : { t: m.sentAt, z, w })
  }
  return encode({ t: m.sentAt, g })
}

export function decodeDelta (bytes: Uint8Array, lookup: KindLookup, origin: string): DeltaMessage {
  const m = decodeFrame(bytes)
  if (typeof m.t !== 'number') throw new ProtocolError('bad delta')
  let g = m.g
  if (m.z !== undefined) {
    if (!(m.z instanceof Uint8Array) || g !== undefined) throw new ProtocolError('bad delta')
    let plain: Buffer
    try {
      // Bounded: a small message must not inflate into gigabytes.
      plain = inflateRawSync(m.z, { maxOutputLength: MAX_FRAME, windowBits: windowOf(m.w) })
    } catch (err: any) {
      throw new ProtocolError(`bad compressed delta: ${String(err.message)}`)
    }
    g = decodeFrame(plain)
  }
  return { sentAt: m.t, entries: unpackEntries({ s: [], g }, lookup, origin) }
}

// ---- members ----

export type WireMember = [string, string[], number, number]

export function packMembers (members: Iterable<MemberRecord>): WireMember[] {
  return [...members].map(m => [m.id, m.addrs, m.lastSeen, m.retiredAt ?? 0])
}

export function unpackMembers (v: unknown): MemberRecord[] {
  if (!Array.isArray(v)) throw new ProtocolError('bad members')
  return v.map((m: any) => {
    if (!Array.isArray(m) || !Array.isArray(m[1]) || typeof m[2] !== 'number' || typeof m[3] !== 'number') throw new ProtocolError('bad member')
    return { id: checkReplicaId(m[0]), addrs: checkAddrs(m[1]), lastSeen: m[2], ...(m[3] > 0 ? { retiredAt: m[3] } : {}) }
  })
}

export function checkAddrs (v: unknown): string[] {
  if (!Array.isArray(v)) throw new ProtocolError('bad addresses')
  return v.filter((a: unknown): a is string => typeof a === 'string' && a.length < 256).slice(0, 16)
}

// ---- frames ----

export type Frame = Record<string, unknown>

export function encodeFrame (frame: Frame): Uint8Array {
  return encode(frame)
}

const keepingBom = new TextDecoder('utf-8', { ignoreBOM: true })
/** cborg's default decode options: its own tokenizer gets them merged in, a custom one only what it is given. */
const DECODE_OPTIONS = { strict: false, allowIndefinite: true, allowUndefined: true, allowBigInt: true }

/**
 * cborg's tokenizer, except that a text string starting with U+FEFF keeps
 * it: cborg decodes text with a TextDecoder that drops a leading BOM, and an
 * item id may start with one (a peer stored "z" for "\ufeffz", echoed it
 * back as a new item, and dropped a message with "\ufeff" as an empty id).
 */
class TextKeepingTokenizer extends Tokenizer {
  next (): Token {
    const start = this._pos
    const token = super.next()
    if (token.type === Type.string) {
      // The text follows the head: 1 byte, plus 1, 2, 4 or 8 of length.
      const info = this.data[start] & 0x1f
      const from = start + (info < 24 ? 1 : 1 + (1 << (info - 24)))
      const d = this.data
      if (d[from] === 0xef && d[from + 1] === 0xbb && d[from + 2] === 0xbf) token.value = keepingBom.decode(d.subarray(from, this._pos))
    }
    return token
  }
}

/**
 * Decode one frame. A frame that states a version must state this one: a
 * node of another wire version is refused, not misread.
 */
export function decodeFrame (bytes: Uint8Array): Frame {
  let f: unknown
  try {
    // A plain Uint8Array, as cborg makes of its input itself: a Buffer's
    // slice() is a view, and byte strings would alias the receive buffer.
    const data = Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes
    f = decode(data, { ...DECODE_OPTIONS, tokenizer: new TextKeepingTokenizer(data, DECODE_OPTIONS) })
  } catch (err: any) {
    throw new ProtocolError(`undecodable message: ${err.message}`)
  }
  if (f === null || typeof f !== 'object' || Array.isArray(f) || f instanceof Uint8Array) throw new ProtocolError('bad frame')
  const v = (f as Frame).v
  if (v !== undefined && v !== WIRE_VERSION) throw new ProtocolError(`peer speaks wire version ${String(v)}, this node speaks ${WIRE_VERSION}`)
  return f as Frame
}

/** Length-prefixed frames on one stream, each read and write bounded by a timeout. */
export class Framed {
  constructor (
    private readonly lp: LengthPrefixedStream<Stream>,
    private readonly stepTimeoutMs: number,
    private readonly onBytes: (direction: 'in' | 'out', n: number) => void = () => {}
  ) {}

  async write (frame: Frame, signal?: AbortSignal): Promise<void> {
    const bytes = encodeFrame(frame)
    this.onBytes('out', bytes.length)
    await this.lp.write(bytes, { signal: this.signal(signal) })
  }

  async read (kind?: string, signal?: AbortSignal): Promise<Frame> {
    const buf = await this.lp.read({ signal: this.signal(signal) })
    this.onBytes('in', buf.byteLength)
    const f = decodeFrame(buf.subarray())
    if (kind !== undefined && f.k !== kind) throw new ProtocolError(`expected ${kind} frame, got ${String(f.k)}`)
    return f
  }

  /** Send entries in chunks; `first` fields go on the first chunk only. */
  async writeEntries (entries: Entry[], lookup: KindLookup, first: Frame = {}): Promise<void> {
    let i = 0
    do {
      const chunk = entries.slice(i, i + ENTRIES_PER_FRAME)
      i += ENTRIES_PER_FRAME
      await this.write({ k: 'e', ...(i === ENTRIES_PER_FRAME ? first : {}), ...packEntries(chunk, lookup), end: i >= entries.length })
    } while (i < entries.length)
  }

  /** Read entry chunks until the last; returns the entries and the first chunk's frame. */
  async readEntries (lookup: KindLookup, first?: Frame): Promise<{ entries: Entry[], first: Frame }> {
    const entries: Entry[] = []
    let f = first ?? await this.read('e')
    const head = f
    while (true) {
      for (const e of unpackEntries(f, lookup)) entries.push(e)
      if (f.end === true) return { entries, first: head }
      f = await this.read('e')
    }
  }

  private signal (outer?: AbortSignal): AbortSignal {
    const step = AbortSignal.timeout(this.stepTimeoutMs)
    return outer === undefined ? step : AbortSignal.any([outer, step])
  }
}

// ---- digest hashes and bitsets ----

export const hashBytes = (h: Uint32Array): Uint8Array => bytesOf(h)

export function hashesFrom (v: unknown, count: number): Uint32Array {
  if (!(v instanceof Uint8Array) || v.length !== count * 8) throw new ProtocolError('bad hashes')
  return typedView(v, Uint32Array)
}

export function toBitset (indices: number[], size: number): Uint8Array {
  const bits = new Uint8Array(Math.ceil(size / 8))
  for (const i of indices) bits[i >> 3] |= 1 << (i & 7)
  return bits
}

/** The indices in [0, count) set in a bitset of `count` bits. */
export function indicesInBitset (v: unknown, count: number): number[] {
  if (!(v instanceof Uint8Array) || v.length !== Math.ceil(count / 8)) throw new ProtocolError('bad bitset')
  const out: number[] = []
  for (let i = 0; i < count; i++) if ((v[i >> 3] & (1 << (i & 7))) !== 0) out.push(i)
  return out
}

/** The nodes whose bit is set in a bitset of one bit per node. */
export function selectByBitset (v: unknown, nodes: number[]): number[] {
  return indicesInBitset(v, nodes.length).map(i => nodes[i])
}
