// Anti-entropy: a direct request/response protocol that repairs whatever
// gossip missed. The initiator and the responder walk their digest trees
// (src/crdt/digest.ts) top-down in lock-step, one round trip per level,
// descending only into subtrees whose hashes differ, then swap the entries
// of the differing subtrees. Equal replicas cost one round trip of a few
// dozen bytes; the cost otherwise grows with what differs, not with the
// whole state. Each hello also carries the member list (membership gossip).
//
//   I -> R  hello {id, a: addrs, m: members, c: #counters, h: root hash}
//   R -> I  hello {id, a, m, c, x: bitset of differing nodes}
//   I -> R  h {h: hashes of the children of the differing nodes}   (repeat
//   R -> I  x {x: bitset}                                             per level)
//   I -> R  e {d: depth, n: nodes, r, e, end}   (initiator's entries, chunked)
//   R -> I  e {r, e, end}                       (only what the initiator lacks)
//   or I -> R  done  when nothing differs.
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { childrenOf, DEPTH, BITS_PER_LEVEL } from '../crdt/digest.js'
import type { Replica, StoredEntry, Member } from '../replica.js'
import { encodeFrame, decodeFrame, packEntries, unpackEntries, packMembers, unpackMembers, checkReplicaId, ProtocolError } from './codec.js'
import { metrics } from '../metrics.js'

export const SYNC_PROTOCOL = '/countd/sync/1'
export const MAX_FRAME = 32 * 1024 * 1024
const ENTRIES_PER_FRAME = 10000
/**
 * Every read or write of a sync exchange must finish within this, so an
 * exchange stuck on a dead link (pause, partition) gives way quickly to the
 * next one, while a large exchange on a live link may take as long as needed.
 */
export const SYNC_STEP_TIMEOUT_MS = 5000
/** Keep descending while the average number of counters per node exceeds this. */
const DESCEND_WHILE_COUNTERS_PER_NODE = 4

/** What sync needs from the network layer besides the replica. */
export interface SyncHost {
  replica: Replica
  /** Our own advertised addresses. */
  addrs: () => string[]
  /** A peer told us who it is and where it listens. */
  onPeerHello: (peer: string, addrs: string[]) => void
  /** The member list to send `peer`, or undefined if it has it already. */
  membersFor: (peer: string) => Member[] | undefined
  /** An exchange with `peer` completed (either role). */
  onSynced: (peer: string) => void
}

class Framed {
  constructor (private readonly lp: LengthPrefixedStream<Stream>) {}

  async write (frame: Record<string, unknown>): Promise<void> {
    const bytes = encodeFrame(frame)
    metrics.syncBytes.inc({ direction: 'out' }, bytes.length)
    await this.lp.write(bytes, { signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
  }

  async read (kind?: string): Promise<Record<string, unknown>> {
    const buf = await this.lp.read({ signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
    metrics.syncBytes.inc({ direction: 'in' }, buf.byteLength)
    const f = decodeFrame(buf.subarray())
    if (kind !== undefined && f.k !== kind) throw new ProtocolError(`expected ${kind} frame, got ${String(f.k)}`)
    return f
  }

  /** Send entries in chunks; `first` fields go on the first chunk only. */
  async writeEntries (entries: StoredEntry[], first: Record<string, unknown> = {}): Promise<void> {
    metrics.syncEntriesSent.inc(entries.length)
    let i = 0
    do {
      const chunk = entries.slice(i, i + ENTRIES_PER_FRAME)
      i += ENTRIES_PER_FRAME
      await this.write({ k: 'e', ...(i === ENTRIES_PER_FRAME ? first : {}), ...packEntries(chunk), end: i >= entries.length })
    } while (i < entries.length)
  }

  /** Read entry chunks until the last; returns the entries and the first chunk's frame. */
  async readEntries (): Promise<{ entries: StoredEntry[], first: Record<string, unknown> }> {
    const entries: StoredEntry[] = []
    let first: Record<string, unknown> | undefined
    while (true) {
      const f = await this.read('e')
      first ??= f
      for (const e of unpackEntries(f)) entries.push(e)
      if (f.end === true) return { entries, first }
    }
  }
}

function hashBytes (h: Uint32Array): Uint8Array {
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength)
}

function hashesFrom (v: unknown, count: number): Uint32Array {
  if (!(v instanceof Uint8Array) || v.length !== count * 8) throw new ProtocolError('bad hashes')
  return new Uint32Array(v.slice().buffer)
}

function toBitset (indices: number[], size: number): Uint8Array {
  const bits = new Uint8Array(Math.ceil(size / 8))
  for (const i of indices) bits[i >> 3] |= 1 << (i & 7)
  return bits
}

function selectByBitset (v: unknown, nodes: number[]): number[] {
  if (!(v instanceof Uint8Array) || v.length !== Math.ceil(nodes.length / 8)) throw new ProtocolError('bad bitset')
  return nodes.filter((_, i) => (v[i >> 3] & (1 << (i & 7))) !== 0)
}

function helloFrame (host: SyncHost, peer: string): Record<string, unknown> {
  const r = host.replica
  const members = host.membersFor(peer)
  return { k: 'hello', id: r.id, a: host.addrs(), c: r.counters.size, ...(members !== undefined ? { m: packMembers(members) } : {}) }
}

function acceptHello (host: SyncHost, f: Record<string, unknown>, remote: PeerId): number {
  const id = checkReplicaId(f.id)
  // The replica id is the peer id: noise authenticated it already.
  if (id !== remote.toString()) throw new ProtocolError('hello from a peer claiming another id')
  if (f.m !== undefined) for (const m of unpackMembers(f.m)) host.replica.mergeMember(m)
  const addrs = unpackMembers([[id, f.a, 0, 0]])[0].addrs
  host.replica.noteMember(id, addrs, Date.now())
  host.onPeerHello(id, addrs)
  return typeof f.c === 'number' ? f.c : 0
}

/** Entries of ours that beat (or are missing from) what the peer sent. */
function newerThan (mine: StoredEntry[], theirs: StoredEntry[]): StoredEntry[] {
  const seen = new Map<string, bigint>()
  for (const e of theirs) seen.set(`${e.name}/${e.replica}`, e.count)
  return mine.filter(e => e.count > (seen.get(`${e.name}/${e.replica}`) ?? 0n))
}

async function mergeReceived (host: SyncHost, entries: StoredEntry[]): Promise<void> {
  const grown = await host.replica.mergeRemote(entries)
  metrics.syncEntriesReceived.inc(grown.length)
}

/** Run one anti-entropy exchange with `peer` as the initiator. */
export async function runSync (host: SyncHost, stream: Stream, remote: PeerId): Promise<void> {
  const io = new Framed(lpStream(stream, { maxDataLength: MAX_FRAME }))
  const { digest } = host.replica
  try {
    await io.write({ ...helloFrame(host, remote.toString()), h: hashBytes(digest.hashes(0, [0])) })
    const hello = await io.read('hello')
    const theirCounters = acceptHello(host, hello, remote)
    let depth = 0
    let nodes = [0]
    let differing = selectByBitset(hello.x, nodes)
    const total = Math.max(host.replica.counters.size, theirCounters)
    // An empty side needs everything: skip the descent.
    const descend = host.replica.counters.size > 0 && theirCounters > 0
    while (descend && differing.length > 0 && depth < DEPTH && total / (1 << (BITS_PER_LEVEL * depth)) > DESCEND_WHILE_COUNTERS_PER_NODE) {
      nodes = childrenOf(differing)
      depth++
      await io.write({ k: 'h', h: hashBytes(digest.hashes(depth, nodes)) })
      differing = selectByBitset((await io.read('x')).x, nodes)
    }
    if (differing.length === 0) {
      await io.write({ k: 'done' })
    } else {
      const mine = host.replica.entriesUnder(depth, new Set(differing))
      await io.writeEntries(mine, { d: depth, n: differing })
      await mergeReceived(host, (await io.readEntries()).entries)
    }
    await stream.close({ signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
    metrics.syncRounds.inc({ role: 'initiator', outcome: differing.length === 0 ? 'equal' : 'repaired' })
    host.onSynced(remote.toString())
  } catch (err) {
    metrics.syncRounds.inc({ role: 'initiator', outcome: 'error' })
    stream.abort(err as Error)
    throw err
  }
}

/** Serve one anti-entropy exchange as the responder. */
export async function serveSync (host: SyncHost, stream: Stream, connection: Connection): Promise<void> {
  const io = new Framed(lpStream(stream, { maxDataLength: MAX_FRAME }))
  const { digest } = host.replica
  try {
    const hello = await io.read('hello')
    acceptHello(host, hello, connection.remotePeer)
    let depth = 0
    let nodes = [0]
    let diff = digest.differing(0, nodes, hashesFrom(hello.h, 1))
    await io.write({ ...helloFrame(host, connection.remotePeer.toString()), x: toBitset(diff, nodes.length) })
    while (true) {
      const f = await io.read()
      if (f.k === 'done') break
      if (f.k === 'h') {
        if (depth >= DEPTH) throw new ProtocolError('sync descended too deep')
        nodes = childrenOf(diff.map(i => nodes[i]))
        depth++
        diff = digest.differing(depth, nodes, hashesFrom(f.h, nodes.length))
        await io.write({ k: 'x', x: toBitset(diff, nodes.length) })
        continue
      }
      if (f.k !== 'e') throw new ProtocolError(`unexpected ${String(f.k)} frame`)
      // Entries: the initiator names the subtrees explicitly.
      const d = f.d
      const n = f.n
      if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > DEPTH || !Array.isArray(n)) throw new ProtocolError('bad entries header')
      const limit = 1 << (BITS_PER_LEVEL * d)
      if (!n.every(x => Number.isInteger(x) && x >= 0 && x < limit)) throw new ProtocolError('bad node index')
      const theirs = unpackEntries(f)
      if (f.end !== true) for (const e of (await io.readEntries()).entries) theirs.push(e)
      const mine = host.replica.entriesUnder(d, new Set(n as number[]))
      await mergeReceived(host, theirs)
      await io.writeEntries(newerThan(mine, theirs))
      break
    }
    await stream.close({ signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
    metrics.syncRounds.inc({ role: 'responder', outcome: 'ok' })
    host.onSynced(connection.remotePeer.toString())
  } catch (err) {
    metrics.syncRounds.inc({ role: 'responder', outcome: 'error' })
    stream.abort(err as Error)
  }
}
