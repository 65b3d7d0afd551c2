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
