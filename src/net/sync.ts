// Anti-entropy: a direct request/response protocol that repairs whatever
// gossip missed, for every dataset at once. The initiator and the responder
// walk their digest trees (src/crdt/digest.ts) top-down in lock-step, one
// round trip per level, descending only into subtrees whose hashes differ,
// then swap the entries of the differing subtrees (read from the store);
// where those subtrees hold several entries each (10M items), the sides
// first swap a fingerprint per entry and then only the entries the other
// lacks. Equal replicas cost one round trip of a few dozen bytes; the cost
// otherwise grows with what differs, not with the whole state. Each hello
// also carries the member list (membership gossip). Frames: src/net/wire.ts.
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { childrenOf, DEPTH, BITS_PER_LEVEL } from '../crdt/digest.js'
import type { Replica, Entry, Member } from '../replica.js'
import {
  Framed, lpOptions, ProtocolError, checkReplicaId, checkAddrs, packMembers, unpackMembers,
  hashBytes, hashesFrom, toBitset, selectByBitset, indicesInBitset, WIRE_VERSION, MAX_FRAME, type Frame
} from './wire.js'
import { metrics } from '../metrics.js'

/**
 * Every read or write of a sync exchange must finish within this, so an
 * exchange stuck on a dead link (pause, partition) gives way quickly to the
 * next one, while a large exchange on a live link may take as long as needed.
 */
export const SYNC_STEP_TIMEOUT_MS = 5000
/** Keep descending while the average number of entries per node exceeds this. */
const DESCEND_WHILE_ENTRIES_PER_NODE = 4
/**
 * Entries (estimated, per side) one exchange swaps at most. Past it, an
 * exchange repairs the first subtrees that differ and reports itself
 * incomplete, and the next one follows at once. Without it a large
 * difference (10M items with 1 % missing: ~900k entries a side) made every
 * exchange overrun SYNC_STEP_TIMEOUT_MS while the responder read and merged,
 * and the nodes never converged.
 */
export const SYNC_ENTRY_BUDGET = 100_000
/**
 * Named nodes holding at least this many entries each (estimated) swap
 * fingerprints first ('eh', see wire.ts): each side then sends only the
 * entries the other lacks, not every entry under the nodes. 10M items over
 * 1M leaves, 1 % missing on one side: 1.74M entries (84 MB) sent for 100k
 * missing. Below it (1M names: ~1 a leaf) the extra step would not pay.
 */
const FINGERPRINTS_FROM_ENTRIES_PER_NODE = 2

/** What sync needs from the network layer besides the replica. */
export interface SyncHost {
  replica: Replica
  /** Our own advertised addresses. */
  addrs: () => string[]
  /** The member list to send `peer`, or undefined if it has it already. */
  membersFor: (peer: string) => Member[] | undefined
  /** An exchange with `peer` completed (either role). */
  onSynced: (peer: string) => void
}

function framed (stream: Stream): Framed {
  return new Framed(lpStream(stream, lpOptions()), SYNC_STEP_TIMEOUT_MS, (direction, n) => { metrics.syncBytes.inc({ direction }, n) })
}

function helloFrame (host: SyncHost, peer: string): Frame {
  const r = host.replica
  const members = host.membersFor(peer)
  return { k: 'hello', v: WIRE_VERSION, id: r.id, a: host.addrs(), n: r.entryCount, ...(members !== undefined ? { m: packMembers(members) } : {}) }
}

function acceptHello (host: SyncHost, f: Frame, remote: PeerId): number {
  const id = checkReplicaId(f.id)
  // The replica id is the peer id: noise authenticated it already.
  if (id !== remote.toString()) throw new ProtocolError('hello from a peer claiming another id')
  if (f.v !== WIRE_VERSION) throw new ProtocolError(`peer ${id} speaks wire version ${String(f.v)}, this node speaks ${WIRE_VERSION}`)
  const { replica } = host
  if (f.m !== undefined) {
    for (const m of unpackMembers(f.m)) {
      replica.members.merge(m)
      // A member list that names us: that member knows our replica id.
      if (m.id === replica.id) replica.gate.markJoined()
    }
  }
  const addrs = checkAddrs(f.a)
  replica.members.note(id, addrs, Date.now())
  return typeof f.n === 'number' ? f.n : 0
}

/** Entries of ours that beat (or are missing from) what the peer sent. */
function newerThan (mine: Entry[], theirs: Entry[]): Entry[] {
  // Keyed by our side: when we lack the subtrees (an empty node catching up,
  // 1,000,000 entries) there is nothing to key (this was 5.7 % of its CPU).
  if (mine.length === 0 || theirs.length === 0) return mine
  const ours = new Map<string, Entry>()
  for (const e of mine) ours.set(`${e.ds}/${e.key}/${e.sub}`, e)
  for (const e of theirs) {
    const id = `${e.ds}/${e.key}/${e.sub}`
    const m = ours.get(id)
    if (m !== undefined && m.value <= e.value) ours.delete(id)
  }
  return [...ours.values()]
}

/** The subtrees a frame names ({d: depth, n: [nodes]}), checked. */
function namedIn (v: unknown): { d: number, nodes: number[] } {
  const { d, n } = (v ?? {}) as { d?: unknown, n?: unknown }
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > DEPTH || !Array.isArray(n)) throw new ProtocolError('bad entries header')
  const limit = 1 << (BITS_PER_LEVEL * d)
  if (!n.every(x => Number.isInteger(x) && x >= 0 && x < limit)) throw new ProtocolError('bad node index')
  return { d, nodes: n as number[] }
}

/**
 * The indices of our fingerprints the peer did not send (it lacks those
 * entries, or holds another value), and of its fingerprints we have no entry
 * for. An equal fingerprint is the same key, sub and value (64 bits).
 */
function matchFingerprints (mineHashes: Uint32Array, theirs: Uint32Array): { send: number[], lacking: number[] } {
  return { send: absentFrom(mineHashes, theirs), lacking: absentFrom(theirs, mineHashes) }
}

/**
 * The indices of the 64-bit fingerprints (word pairs) of `these` that are not
 * in `others`: a table of `others`' indices sized once (load under 1/2), open
 * addressing from the low word. (A growing HashSet128 of each side was 20 %
 * of a responder's CPU in a 10M-item catch-up: ~100,000 fingerprints a side
 * and exchange.)
 */
export function absentFrom (these: Uint32Array, others: Uint32Array): number[] {
  const n = others.length / 2
  let bits = 4
  while ((1 << bits) < 2 * n) bits++
  const mask = (1 << bits) - 1
  const slots = new Int32Array(1 << bits) // index + 1 of a fingerprint of `others`; 0 = empty
  for (let j = 0; j < n; j++) {
    let i = Math.imul(others[2 * j + 1], 0x9e3779b1) >>> (32 - bits)
    while (slots[i] !== 0) i = (i + 1) & mask
    slots[i] = j + 1
  }
  const absent: number[] = []
  for (let k = 0; k < these.length / 2; k++) {
    const a = these[2 * k]
    const b = these[2 * k + 1]
    let i = Math.imul(b, 0x9e3779b1) >>> (32 - bits)
    let found = false
    for (let s = slots[i]; s !== 0; i = (i + 1) & mask, s = slots[i]) {
      if (others[2 * s - 1] === b && others[2 * s - 2] === a) { found = true; break }
    }
    if (!found) absent.push(k)
  }
  return absent
}

async function mergeReceived (host: SyncHost, entries: Entry[]): Promise<void> {
  const grown = await host.replica.mergeRemote(entries)
  metrics.syncEntriesReceived.inc(grown.length)
}

function sameNodes (a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** Where a sweep goes on: the next subtree at `depth` (see SyncProgress). */
export interface SweepCursor { depth: number, next: number }

/**
 * What one exchange achieved. `complete`: every difference repaired.
 * Otherwise run another; with `resume`, it goes on sweeping the tree from
 * there without a descent (a side that started empty lacks everything, so a
 * descent would find every subtree differing, at the cost of big hash frames).
 */
export interface SyncProgress {
  complete: boolean
  resume?: SweepCursor
  /**
   * The differing subtrees a descent found that its exchange did not name
   * (over the budget): the next exchange names them without descending
   * again. (Each descent resent the hashes of every differing subtree: 10M
   * items with 1 % missing, ~6 MB in each of eleven exchanges.) Whatever
   * differed when the first exchange began is in the descent's list, so the
   * exchange that ends it is complete in the sense consistent reads need.
   */
  rest?: { depth: number, nodes: number[], total: number }
  /**
   * A partial exchange's received entries, still being merged: the next
   * exchange of the sweep runs meanwhile (a sweep is steered by its cursor,
   * not by the digest, so it does not need them merged), and the last one
   * waits for every merge before it reports complete.
   */
  merging?: Promise<void>
}

/** Estimated entries under one node at `depth` when `total` entries spread over the tree. */
const perNode = (total: number, depth: number): number => Math.max(1, total / (1 << (BITS_PER_LEVEL * depth)))
/** Whether a descent that stops at `depth` swaps fingerprints first (the responder then reads nothing ahead). */
const swapsFingerprints = (total: number, depth: number): boolean => perNode(total, depth) >= FINGERPRINTS_FROM_ENTRIES_PER_NODE
/** How many nodes at `depth` one exchange takes: as many as fit the budget, at least one. */
const nodesWithin = (total: number, depth: number, budget: number): number => Math.max(1, Math.floor(budget / perNode(total, depth)))
/**
 * Whether the initiator's descent goes below `depth`. The responder asks the
 * same question to read ahead (serveSync), so both must come from here.
 */
const descendsBelow = (total: number, depth: number): boolean => depth < DEPTH && perNode(total, depth) > DESCEND_WHILE_ENTRIES_PER_NODE
/** The differing nodes at `depth` one exchange names: the first that fit the budget. */
const namedNodes = (differing: number[], total: number, depth: number, budget: number): number[] => differing.slice(0, nodesWithin(total, depth, budget))

/** The next subtrees of a sweep: consecutive nodes at a depth where they fit the budget. */
function sweep (total: number, budget: number, at?: SweepCursor): { depth: number, nodes: number[], progress: SyncProgress } {
  let depth = at?.depth ?? 0
  if (at === undefined) while (depth < DEPTH && perNode(total, depth) > budget) depth++
  const all = 1 << (BITS_PER_LEVEL * depth)
  const from = at?.next ?? 0
  const to = Math.min(all, from + nodesWithin(total, depth, budget))
  const nodes = Array.from({ length: to - from }, (_, i) => from + i)
  return { depth, nodes, progress: to === all ? { complete: true } : { complete: false, resume: { depth, next: to } } }
}

/**
 * Run one anti-entropy exchange with `peer` as the initiator: a descent to
 * the differing subtrees, or the next step of a sweep (`resume`). At most
 * about `budget` entries a side are swapped.
 */
export async function runSync (host: SyncHost, stream: Stream, remote: PeerId, budget = SYNC_ENTRY_BUDGET, previous?: SyncProgress): Promise<SyncProgress> {
  const resume = previous?.resume
  const io = framed(stream)
  const { replica } = host
  const { digest, lookup } = replica
  try {
    // A continuation knows what it will name: p tells the responder, which reads them while we do.
    const rest = resume === undefined ? previous?.rest : undefined
    const carried = rest === undefined ? undefined : { ...rest, named: namedNodes(rest.nodes, rest.total, rest.depth, budget) }
    // b: our budget, so the responder can read the entries of the subtrees we will name while we read ours.
    await io.write({
      ...helloFrame(host, remote.toString()),
      h: hashBytes(digest.hashes(0, [0])),
      b: budget,
      ...(carried !== undefined ? { p: { d: carried.depth, n: carried.named } } : {})
    })
    const hello = await io.read('hello')
    const theirEntries = acceptHello(host, hello, remote)
    // The responder read our hello before answering: it knows our replica id.
    replica.gate.markJoined()
    const total = Math.max(replica.entryCount, theirEntries)
    let depth = 0
    let differing = selectByBitset(hello.x, [0])
    let part: { depth: number, nodes: number[], progress: SyncProgress } | undefined
    /** Swap fingerprints before entries (a descent to nodes of several entries each; not a sweep). */
    let byFingerprint = false
    if (differing.length === 0) {
      // Equal roots: nothing to do (also ends a sweep the other direction finished).
    } else if (resume !== undefined || replica.entryCount === 0 || theirEntries === 0) {
      part = sweep(total, budget, resume)
    } else {
      let nodes: number[] | undefined
      let left: number[] = []
      if (carried !== undefined) {
        depth = carried.depth
        nodes = carried.named
        left = carried.nodes.slice(nodes.length)
      } else {
        while (differing.length > 0 && descendsBelow(total, depth)) {
          const children = childrenOf(differing)
          depth++
          await io.write({ k: 'h', h: hashBytes(digest.hashes(depth, children)) })
          differing = selectByBitset((await io.read('x')).x, children)
        }
        if (differing.length > 0) {
          // Over the budget: the first differing subtrees now, the rest in the next exchanges.
          nodes = namedNodes(differing, total, depth, budget)
          left = differing.slice(nodes.length)
        }
      }
      if (nodes !== undefined) {
        // A chain names its subtrees by the total of its first descent.
        part = { depth, nodes, progress: left.length === 0 ? { complete: true } : { complete: false, rest: { depth, nodes: left, total: carried?.total ?? total } } }
        byFingerprint = hello.f === 1 && swapsFingerprints(total, depth)
      }
    }
    let merging = previous?.merging ?? Promise.resolve()
    if (part === undefined) {
      await io.write({ k: 'done' })
    } else {
      let theirs: Entry[]
      if (byFingerprint) {
        const mine = await replica.fingerprintsUnder(part.depth, part.nodes)
        await io.write({ k: 'eh', d: part.depth, n: part.nodes, c: mine.count, h: hashBytes(mine.hashes) })
        const answer = await io.readEntries(lookup)
        theirs = answer.entries
        const lacked = await mine.entriesAt(indicesInBitset(answer.first.x, mine.count))
        metrics.syncEntriesSent.inc(lacked.length)
        await io.writeEntries(lacked, lookup)
      } else {
        const mine = await replica.entriesUnder(part.depth, part.nodes)
        metrics.syncEntriesSent.inc(mine.length)
        await io.writeEntries(mine, lookup, { d: part.depth, n: part.nodes })
        theirs = (await io.readEntries(lookup)).entries
      }
      merging = merging.then(async () => { await mergeReceived(host, theirs) })
    }
    await stream.close({ signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
    const progress: SyncProgress = part?.progress ?? { complete: true }
    if (progress.complete) {
      await merging
    } else {
      merging.catch(() => {}) // the next exchange (or whoever ends the sweep) awaits it
      progress.merging = merging
    }
    metrics.syncRounds.inc({ role: 'initiator', outcome: part === undefined ? 'equal' : progress.complete ? 'repaired' : 'partial' })
    // A partial exchange completed too (the peer has our hello): it keeps the other side from starting its own.
    host.onSynced(remote.toString())
    return progress
  } catch (err) {
    metrics.syncRounds.inc({ role: 'initiator', outcome: 'error' })
    stream.abort(err as Error)
    throw err
  }
}

/** Serve one anti-entropy exchange as the responder. */
export async function serveSync (host: SyncHost, stream: Stream, connection: Connection): Promise<void> {
  const io = framed(stream)
  const { replica } = host
  const { digest, lookup } = replica
  try {
    const hello = await io.read('hello')
    const theirEntries = acceptHello(host, hello, connection.remotePeer)
    let depth = 0
    let nodes = [0]
    let diff = digest.differing(0, nodes, hashesFrom(hello.h, 1))
    const ours = helloFrame(host, connection.remotePeer.toString())
    await io.write({ ...ours, x: toBitset(diff, nodes.length), f: 1 })
    // The initiator's descent is deterministic: where it will stop and which
    // subtrees it will name follow from both entry counts and its budget. Our
    // entries under them are read meanwhile, not after its entries arrived
    // (1 % of 1M names differing: two reads of ~1.7 s one after the other).
    const total = Math.max(theirEntries, ours.n as number)
    const budget = typeof hello.b === 'number' && hello.b >= 1 ? hello.b : SYNC_ENTRY_BUDGET
    let prefetched: { depth: number, nodes: number[], entries: Promise<Entry[]> } | undefined
    const readAhead = (at: number, named: number[]): void => {
      const entries = replica.entriesUnder(at, named)
      entries.catch(() => {}) // awaited below if used; a failed read is read again there
      prefetched = { depth: at, nodes: named, entries }
    }
    const prefetchIfLast = (): void => {
      if (diff.length === 0 || descendsBelow(total, depth) || swapsFingerprints(total, depth)) return
      readAhead(depth, namedNodes(diff.map(i => nodes[i]), total, depth, budget))
    }
    if (hello.p !== undefined) {
      // A continuation of a repair names its subtrees in the hello: read them now.
      const { d, nodes: named } = namedIn(hello.p)
      if (!swapsFingerprints(total, d)) readAhead(d, named)
    } else {
      prefetchIfLast()
    }
    let merging: Promise<void> = Promise.resolve()
    let first = true
    while (true) {
      const f = await io.read()
      if (first) {
        // The initiator read our hello before sending this: it knows our replica id.
        replica.gate.markJoined()
        first = false
      }
      if (f.k === 'done') break
      if (f.k === 'h') {
        if (depth >= DEPTH) throw new ProtocolError('sync descended too deep')
        nodes = childrenOf(diff.map(i => nodes[i]))
        depth++
        diff = digest.differing(depth, nodes, hashesFrom(f.h, nodes.length))
        await io.write({ k: 'x', x: toBitset(diff, nodes.length) })
        prefetchIfLast()
        continue
      }
      if (f.k !== 'e' && f.k !== 'eh') throw new ProtocolError(`unexpected ${String(f.k)} frame`)
      // Entries: the initiator names the subtrees explicitly.
      const { d, nodes: asked } = namedIn(f)
      const mineUnder = async (): Promise<Entry[]> => {
        const early = prefetched !== undefined && prefetched.depth === d && sameNodes(prefetched.nodes, asked) ? await prefetched.entries.catch(() => undefined) : undefined
        return early ?? await replica.entriesUnder(d, asked)
      }
      if (f.k === 'eh') {
        // Fingerprints: send what the initiator lacks, name what we lack, take it.
        if (typeof f.c !== 'number' || !Number.isInteger(f.c) || f.c < 0 || f.c * 8 > MAX_FRAME) throw new ProtocolError('bad fingerprint count')
        const theirHashes = hashesFrom(f.h, f.c)
        const mine = await replica.fingerprintsUnder(d, asked)
        const { send, lacking } = matchFingerprints(mine.hashes, theirHashes)
        const entries = await mine.entriesAt(send)
        metrics.syncEntriesSent.inc(entries.length)
        await io.writeEntries(entries, lookup, { x: toBitset(lacking, f.c) })
        const theirs = (await io.readEntries(lookup)).entries
        merging = mergeReceived(host, theirs)
        merging.catch(() => {})
        break
      }
      const theirs = (await io.readEntries(lookup, f)).entries
      const mine = await mineUnder()
      // Merged while our answer goes out: the initiator starts its next
      // exchange of a sweep without waiting for our merge.
      merging = mergeReceived(host, theirs)
      merging.catch(() => {})
      const send = newerThan(mine, theirs)
      metrics.syncEntriesSent.inc(send.length)
      await io.writeEntries(send, lookup)
      break
    }
    await stream.close({ signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
    await merging
    metrics.syncRounds.inc({ role: 'responder', outcome: 'ok' })
    host.onSynced(connection.remotePeer.toString())
  } catch (err) {
    metrics.syncRounds.inc({ role: 'responder', outcome: 'error' })
    stream.abort(err as Error)
  }
}
