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

import type { DatasetKind, DatasetState } from './dataset.js'
import { hash64, leafOf, mixWord, fmix, countWords, LEAF_BITS } from './digest.js'
import { isValidKey, isReplicaId } from '../validate.js'
import { typedView, bytesOf, packParts, unpackParts, type Chunk } from '../util/bytes.js'


/** firstRep of a counter whose counts are all in `multi` (see CounterSet). */
const MULTI = 0xffffffff

/**
 * Every counter of a replica. Most counters hear from one replica, and a node
 * may hold millions, so a counter is a slot in typed arrays (its first
 * replica and that replica's count, as a double while exact) until a second
 * replica counts it or its count passes 2^53; then its counts move to a
 * GCounter in `multi`. At 1,000,000 names that is ~70 bytes a counter where
 * an object per counter took ~130, and a restart restores arrays instead of
 * making a million objects.
 */
export class CounterSet implements DatasetState {
  private readonly slotOf = new Map<string, number>()
  private nameOf: string[] = []
  /** slot -> index in `replicas` of its first replica, or MULTI. */
  private firstRep = new Uint32Array(64)
  /** slot -> the first replica's count (exact: <= 2^53 - 1). */
  private firstCount = new Float64Array(64)
  private readonly multi = new Map<number, GCounter>()
  /** Replica ids by index, and their indexes: millions of counters share a few ids. */
  private readonly replicas: string[] = []
  private readonly replicaIndex = new Map<string, number>()
  /** Called with each name the first time it is seen (listing index). */
  onNewKey?: (name: string) => void
  /**
   * The slots of each digest-tree leaf, as linked lists (head per leaf, next
   * per slot; -1 ends): built at the first forEachInLeaves, not at load (a
   * name hash each: ~0.2 s at 1M names, off the restart), then kept up.
   */
  private leafHead: Int32Array | undefined
  private leafNext = new Int32Array(0)

  get keys (): number { return this.nameOf.length }

  forEachInLeaves (from: number, to: number, fn: (name: string, replica: string, count: bigint) => void): void {
    if (this.leafHead === undefined) this.buildLeafIndex()
    const head = this.leafHead as Int32Array
    for (let leaf = from; leaf < to; leaf++) {
      for (let slot = head[leaf]; slot !== -1; slot = this.leafNext[slot]) {
        const name = this.nameOf[slot]
        this.forEachAt(slot, (count, replica) => { fn(name, replica, count) })
      }
    }
  }

  private buildLeafIndex (): void {
    this.leafHead = new Int32Array(1 << LEAF_BITS).fill(-1)
    this.leafNext = new Int32Array(this.firstRep.length)
    for (let slot = 0; slot < this.nameOf.length; slot++) this.linkLeaf(slot)
  }

  private linkLeaf (slot: number): void {
    const head = this.leafHead as Int32Array
    const leaf = leafOf(this.nameOf[slot])
    this.leafNext[slot] = head[leaf]
    head[leaf] = slot
  }

  /** Every name, in the order first seen; a name's slot is its position (0 .. keys-1). */
  names (): IterableIterator<string> { return this.slotOf.keys() }

  /** fn(count, replica) for each replica's count of the counter in `slot`. */
  forEachAt (slot: number, fn: (count: bigint, replica: ReplicaId) => void): void {
    const r = this.firstRep[slot]
    if (r === MULTI) (this.multi.get(slot) as GCounter).forEach(fn)
    else fn(BigInt(this.firstCount[slot]), this.replicas[r])
  }

  get (name: string, replica: string): bigint {
    const slot = this.slotOf.get(name)
    if (slot === undefined) return 0n
    const r = this.firstRep[slot]
    if (r === MULTI) return (this.multi.get(slot) as GCounter).count(replica)
    return this.replicas[r] === replica ? BigInt(this.firstCount[slot]) : 0n
  }

  value (name: string): bigint {
    const slot = this.slotOf.get(name)
    if (slot === undefined) return 0n
    const r = this.firstRep[slot]
    return r === MULTI ? (this.multi.get(slot) as GCounter).value : BigInt(this.firstCount[slot])
  }

  /** The value of `name` were `replica`'s count `count` (the other replicas' counts as they are). */
  valueWith (name: string, replica: string, count: bigint): bigint {
    const slot = this.slotOf.get(name)
    if (slot === undefined) return count
    const r = this.firstRep[slot]
    if (r === MULTI) {
      const c = this.multi.get(slot) as GCounter
      return c.value - c.count(replica) + count
    }
    return this.replicas[r] === replica ? count : BigInt(this.firstCount[slot]) + count
  }

  subsOf (name: string): Array<[string, bigint]> {
    const out: Array<[string, bigint]> = []
    const slot = this.slotOf.get(name)
    if (slot !== undefined) this.forEachAt(slot, (count, replica) => out.push([replica, count]))
    return out
  }

  /** Merge one entry (point-wise max). Returns the previous count if it grew, else undefined. */
  apply (name: string, replica: string, count: bigint): bigint | undefined {
    let slot = this.slotOf.get(name)
    if (slot === undefined) {
      slot = this.nameOf.length
      this.reserve(slot + 1)
      this.slotOf.set(name, slot)
      this.nameOf.push(name)
      if (this.leafHead !== undefined) this.linkLeaf(slot)
      this.onNewKey?.(name)
      if (count <= MAX_SAFE) {
        this.firstRep[slot] = this.intern(replica)
        this.firstCount[slot] = Number(count)
        return 0n
      }
      this.firstRep[slot] = MULTI
      this.multi.set(slot, new GCounter())
    }
    const r = this.firstRep[slot]
    if (r === MULTI) return (this.multi.get(slot) as GCounter).mergeEntry(this.replicas[this.intern(replica)], count)
    const first = this.replicas[r]
    const old = this.firstCount[slot]
    if (first === replica) {
      if (count <= old) return undefined
      if (count <= MAX_SAFE) {
        this.firstCount[slot] = Number(count)
        return BigInt(old)
      }
    }
    // A second replica, or a count past 2^53: this counter's counts move to a GCounter.
    const c = new GCounter()
    c.mergeEntry(first, BigInt(old))
    this.firstRep[slot] = MULTI
    this.multi.set(slot, c)
    return c.mergeEntry(this.replicas[this.intern(replica)], count)
  }

  private intern (replica: string): number {
    let i = this.replicaIndex.get(replica)
    if (i === undefined) {
      i = this.replicas.length
      this.replicas.push(replica)
      this.replicaIndex.set(replica, i)
    }
    return i
  }

  /** Room for `n` slots. */
  private reserve (n: number): void {
    if (n <= this.firstRep.length) return
    let size = this.firstRep.length * 2
    while (size < n) size *= 2
    const rep = new Uint32Array(size)
    rep.set(this.firstRep)
    const count = new Float64Array(size)
    count.set(this.firstCount)
    this.firstRep = rep
    this.firstCount = count
    if (this.leafHead !== undefined) {
      const next = new Int32Array(size)
      next.set(this.leafNext)
      this.leafNext = next
    }
  }

  /**
   * Snapshot format 3, as packParts chunks: fields {f: 3, r: replica ids, n:
   * counters, big: decimal counts past 2^53}, parts [every name joined by
   * "\n" in slot order (UTF-8), first replica's index per slot (u32, or
   * MULTI), its count per slot (f64), then the counters in `multi`: their
   * slots (u32), replicas each (u32), replica index per entry (u32), count
   * per entry (f64; -1: the next of big)]. The per-slot arrays go out as views
   * of the ones held (a snapshot taken while running is used only if nothing
   * changed until it is on disk).
   */
  snapshot (): Chunk[] {
    const n = this.nameOf.length
    const mSlots = new Uint32Array(this.multi.size)
    const sizes = new Uint32Array(this.multi.size)
    const reps: number[] = []
    const counts: number[] = []
    const big: string[] = []
    let k = 0
    for (const [slot, c] of this.multi) {
      mSlots[k] = slot
      sizes[k++] = c.size
      c.forEach((count, replica) => {
        reps.push(this.intern(replica))
        if (count <= MAX_SAFE) {
          counts.push(Number(count))
        } else {
          counts.push(-1)
          big.push(count.toString())
        }
      })
    }
    return packParts({ f: 3, r: this.replicas, n, big }, [
      Buffer.from(this.nameOf.join('\n'), 'utf8'),
      bytesOf(this.firstRep.subarray(0, n)),
      bytesOf(this.firstCount.subarray(0, n)),
      bytesOf(mSlots), bytesOf(sizes), bytesOf(Uint32Array.from(reps)), bytesOf(Float64Array.from(counts))
    ])
  }

  /** Take snapshot() back; throws on anything it did not write. */
  static restore (bytes: Uint8Array): CounterSet {
    const bad = (): never => { throw new Error('bad counter snapshot') }
    let unpacked: ReturnType<typeof unpackParts>
    try { unpacked = unpackParts(bytes) } catch { return bad() }
    const { fields, parts } = unpacked
    const snap = fields as { f?: number, r: string[], n: number, big: string[] }
    if (snap.f !== 3 || !Array.isArray(snap.r) || !Number.isSafeInteger(snap.n) || !Array.isArray(snap.big) || parts.length !== 7) bad()
    const set = new CounterSet()
    for (const r of snap.r) {
      if (typeof r !== 'string') bad()
      set.intern(r)
    }
    const first = typedView(parts[1], Uint32Array)
    const firstCount = typedView(parts[2], Float64Array)
    const n = first.length
    const names = n === 0 ? [] : Buffer.from(parts[0].buffer, parts[0].byteOffset, parts[0].byteLength).toString('utf8').split('\n')
    if (names.length !== n || firstCount.length !== n || snap.n !== n) bad()
    set.reserve(n)
    set.firstRep.set(first)
    set.firstCount.set(firstCount)
    for (let i = 0; i < n; i++) {
      const r = first[i]
      const c = firstCount[i]
      if (r !== MULTI && (r >= set.replicas.length || !(c >= 1 && c <= Number.MAX_SAFE_INTEGER && Number.isInteger(c)))) bad()
      set.slotOf.set(names[i], i)
    }
    if (set.slotOf.size !== n) bad()
    set.nameOf = names
    const mSlots = typedView(parts[3], Uint32Array)
    const sizes = typedView(parts[4], Uint32Array)
    const reps = typedView(parts[5], Uint32Array)
    const counts = typedView(parts[6], Float64Array)
    if (sizes.length !== mSlots.length || reps.length !== counts.length) bad()
    let j = 0
    let b = 0
    for (let k = 0; k < mSlots.length; k++) {
      const slot = mSlots[k]
      if (slot >= n || first[slot] !== MULTI || set.multi.has(slot)) bad()
      const c = new GCounter()
      for (let e = 0; e < sizes[k]; e++, j++) {
        if (j >= counts.length || reps[j] >= set.replicas.length) bad()
        const count = counts[j] === -1 ? BigInt(snap.big[b++]) : BigInt(counts[j])
        if (count <= 0n) bad()
        c.mergeEntry(set.replicas[reps[j]], count)
      }
      set.multi.set(slot, c)
    }
    if (j !== counts.length) bad()
    for (let i = 0; i < n; i++) if (first[i] === MULTI && !set.multi.has(i)) bad()
    return set
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
  snapshot: set => set.snapshot(),
  restore: bytes => CounterSet.restore(bytes)
}
