// A grow-only counter (G-Counter): one monotonically growing count per
// replica; the value is their sum; merge takes the point-wise maximum.
// Pure data structure: no I/O, no clocks.
//
// Most counters only ever hear from one or two replicas, and a node may hold
// millions of them, so the first replica's count is stored inline and a Map
// is only allocated for the others (~100 bytes per counter instead of ~300).

export type ReplicaId = string

/** One replica's count of one counter: the unit of a delta. */
export interface Entry {
  replica: ReplicaId
  count: bigint
}

export class GCounter {
  private firstReplica: ReplicaId | undefined
  private firstCount = 0n
  private others: Map<ReplicaId, bigint> | undefined
  /** Sum of the counts, kept in step by every mutation (only when others exist). */
  private othersSum = 0n

  get value (): bigint { return this.firstCount + this.othersSum }

  /** Number of replicas with a count. */
  get size (): number { return (this.firstReplica === undefined ? 0 : 1) + (this.others?.size ?? 0) }

  count (replica: ReplicaId): bigint {
    if (replica === this.firstReplica) return this.firstCount
    return this.others?.get(replica) ?? 0n
  }

  /** replicaId -> count, as a fresh Map (for cold paths; hot paths use forEach). */
  get entries (): Map<ReplicaId, bigint> {
    const m = new Map<ReplicaId, bigint>()
    this.forEach((count, replica) => m.set(replica, count))
    return m
  }

  forEach (fn: (count: bigint, replica: ReplicaId) => void): void {
    if (this.firstReplica !== undefined) fn(this.firstCount, this.firstReplica)
    this.others?.forEach(fn)
  }

  /**
   * Add `by` (> 0) to `replica`'s count and return the delta to ship: the
   * replica's whole new count, so applying it twice or out of order is harmless.
   */
  increment (replica: ReplicaId, by: bigint): Entry {
    if (by <= 0n) throw new RangeError('increment must be positive')
    const count = this.count(replica) + by
    this.mergeEntry(replica, count)
    return { replica, count }
  }

  /** Merge one entry (point-wise max). Returns the previous count if it grew, else undefined. */
  mergeEntry (replica: ReplicaId, count: bigint): bigint | undefined {
    const old = this.count(replica)
    if (count <= old) return undefined
    if (this.firstReplica === undefined || replica === this.firstReplica) {
      this.firstReplica = replica
      this.firstCount = count
    } else {
      this.others ??= new Map()
      this.others.set(replica, count)
      this.othersSum += count - old
    }
    return old
  }

  /** Merge another state or delta; returns the entries that grew here. */
  merge (other: Iterable<[ReplicaId, bigint]>): Entry[] {
    const grown: Entry[] = []
    for (const [replica, count] of other) {
      if (this.mergeEntry(replica, count) !== undefined) grown.push({ replica, count })
    }
    return grown
  }

  /** A copy, for callers that must not see later mutations. */
  clone (): GCounter {
    const c = new GCounter()
    this.forEach((count, replica) => c.mergeEntry(replica, count))
    return c
  }
}

// ---- counters as a dataset (src/crdt/dataset.ts) ----

import { encode, decode } from 'cborg'
import type { DatasetKind, DatasetState } from './dataset.js'
import { hash64, leafOf, mixWord, fmix, countWords } from './digest.js'
import { isValidKey, isReplicaId } from '../validate.js'
import { typedView, bytesOf } from '../util/bytes.js'


/** Every counter of a replica: name -> G-Counter. */
export class CounterSet implements DatasetState {
  readonly byName = new Map<string, GCounter>()
  /** One string instance per replica id: millions of entries share a few ids. */
  private readonly replicaIds = new Map<string, string>()
  /** Called with each name the first time it is seen (listing index). */
  onNewKey?: (name: string) => void

  get keys (): number { return this.byName.size }

  get (name: string, replica: string): bigint {
    return this.byName.get(name)?.count(replica) ?? 0n
  }

  value (name: string): bigint { return this.byName.get(name)?.value ?? 0n }

  /** The value of `name` were `replica`'s count `count` (the other replicas' counts as they are). */
  valueWith (name: string, replica: string, count: bigint): bigint {
    const c = this.byName.get(name)
    return c === undefined ? count : c.value - c.count(replica) + count
  }

  subsOf (name: string): Array<[string, bigint]> {
    const out: Array<[string, bigint]> = []
    this.byName.get(name)?.forEach((count, replica) => out.push([replica, count]))
    return out
  }

  /** The one string instance of this replica id. */
  intern (replica: string): string {
    let id = this.replicaIds.get(replica)
    if (id === undefined) {
      id = replica
      this.replicaIds.set(id, id)
    }
    return id
  }

  apply (name: string, replica: string, count: bigint): bigint | undefined {
    const id = this.intern(replica)
    let c = this.byName.get(name)
    if (c === undefined) {
      c = new GCounter()
      this.byName.set(name, c)
      this.onNewKey?.(name)
    }
    return c.mergeEntry(id, count)
  }
}

const replicaHashes = new Map<string, [number, number]>()

/**
 * 64-bit hash of one (name, replica, count) entry: two murmur3 lanes with
 * different seeds over the words of the name's and replica's string hashes
 * and of the count. Replica hashes are cached (few replicas, many entries).
 */
export function counterEntryHash (name: string, replica: string, count: bigint): [number, number] {
  let rh = replicaHashes.get(replica)
  if (rh === undefined) {
    rh = hash64(replica, 0x7f4a7c15)
    if (replicaHashes.size < 100000) replicaHashes.set(replica, rh)
  }
  const [n1, n2] = hash64(name)
  let a = 0x3c6ef372
  let b = 0xa54ff53a
  // Mix n1, n2, the replica's lanes, then the count's words (hot path: no arrays).
  a = mixWord(a, n1); b = mixWord(b, n1 ^ 0x5bd1e995)
  a = mixWord(a, n2); b = mixWord(b, n2 ^ 0x5bd1e995)
  a = mixWord(a, rh[0]); b = mixWord(b, rh[0] ^ 0x5bd1e995)
  a = mixWord(a, rh[1]); b = mixWord(b, rh[1] ^ 0x5bd1e995)
  let nWords = 2
  if (count <= MAX_SAFE) {
    const n = Number(count)
    const lo = n % TWO_32
    const hi = Math.floor(n / TWO_32)
    a = mixWord(a, lo); b = mixWord(b, lo ^ 0x5bd1e995)
    a = mixWord(a, hi); b = mixWord(b, hi ^ 0x5bd1e995)
  } else {
    const words = countWords(count)
    nWords = words.length
    for (const w of words) { a = mixWord(a, w); b = mixWord(b, w ^ 0x5bd1e995) }
  }
  return [fmix(a ^ nWords), fmix(b ^ (nWords + 0x68e31da4))]
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const TWO_32 = 2 ** 32

export const counterKind: DatasetKind<CounterSet> = {
  tag: 'c',
  name: 'counters',
  isKey: isValidKey,
  isSub: isReplicaId,
  isValue: count => count > 0n,
  ownerOf: (_name, replica) => replica,
  subIsOrigin: true,
  leafOf: name => leafOf(name),
  hashOf: counterEntryHash,
  create: () => new CounterSet(),
  snapshot: snapshotCounters,
  restore: restoreCounters
}

/**
 * Snapshot format 2: {f: 2, r: replica ids, names: every name joined by
 * "\n", sizes: u32 replicas per name, reps: u32 replica index per entry,
 * counts: f64 per entry (-1: the count is the next decimal string of `big`,
 * past 2^53), big}. Flat typed arrays instead of a CBOR array of 4,000,000
 * small values at 1,000,000 names: decoding those and their garbage was
 * most of a restart (1.5 s of ~2 s).
 */
function snapshotCounters (set: CounterSet): Uint8Array {
  const index = new Map<string, number>()
  const r: string[] = []
  const names: string[] = []
  let total = 0
  for (const c of set.byName.values()) total += c.size
  const sizes = new Uint32Array(set.byName.size)
  const reps = new Uint32Array(total)
  const counts = new Float64Array(total)
  const big: string[] = []
  let i = 0
  let j = 0
  for (const [name, c] of set.byName) {
    names.push(name)
    sizes[i++] = c.size
    c.forEach((count, replica) => {
      let ri = index.get(replica)
      if (ri === undefined) {
        ri = r.length
        index.set(replica, ri)
        r.push(replica)
      }
      reps[j] = ri
      if (count <= MAX_SAFE) {
        counts[j] = Number(count)
      } else {
        counts[j] = -1
        big.push(count.toString())
      }
      j++
    })
  }
  return encode({ f: 2, r, names: names.join('\n'), sizes: bytesOf(sizes), reps: bytesOf(reps), counts: bytesOf(counts), big })
}

function restoreCounters (bytes: Uint8Array): CounterSet {
  const snap = decode(bytes) as { f?: number, r: string[], names: string, sizes: Uint8Array, reps: Uint8Array, counts: Uint8Array, big: string[] }
  if (snap.f !== 2 || !Array.isArray(snap.r) || typeof snap.names !== 'string' || !Array.isArray(snap.big)) throw new Error('bad counter snapshot')
  const sizes = typedView(snap.sizes, Uint32Array)
  const reps = typedView(snap.reps, Uint32Array)
  const counts = typedView(snap.counts, Float64Array)
  const names = sizes.length === 0 ? [] : snap.names.split('\n')
  if (names.length !== sizes.length || reps.length !== counts.length) throw new Error('bad counter snapshot')
  const set = new CounterSet()
  const replicas = snap.r.map(r => set.intern(r))
  // Straight into byName, without apply's lookups per entry: a restart of
  // 1,000,000 names spent 1.1 s of 2.2 s in apply.
  const byName = set.byName
  let j = 0
  let b = 0
  for (let i = 0; i < names.length; i++) {
    const c = new GCounter()
    for (let k = 0; k < sizes[i]; k++, j++) {
      if (j >= counts.length) throw new Error('bad counter snapshot')
      const replica = replicas[reps[j]]
      const count = counts[j] === -1 ? BigInt(snap.big[b++]) : BigInt(counts[j])
      if (replica === undefined || count <= 0n) throw new Error('bad counter snapshot')
      c.mergeEntry(replica, count)
    }
    byName.set(names[i], c)
  }
  if (j !== counts.length || byName.size !== names.length) throw new Error('bad counter snapshot')
  return set
}
