// A grow-only counter (G-Counter): one monotonically growing count per
// replica; the value is their sum; merge takes the point-wise maximum.
// Pure data structure: no I/O, no clocks.

export type ReplicaId = string

/** One replica's count of one counter: the unit of a delta. */
export interface Entry {
  replica: ReplicaId
  count: bigint
}

export class GCounter {
  /** replicaId -> count. Never holds zero or negative counts. */
  readonly entries = new Map<ReplicaId, bigint>()
  /** Cached sum of `entries`, kept in step by every mutation. */
  private sum = 0n

  get value (): bigint { return this.sum }

  count (replica: ReplicaId): bigint { return this.entries.get(replica) ?? 0n }

  /**
   * Add `by` (> 0) to `replica`'s count and return the delta to ship: the
   * replica's whole new count, so applying it twice or out of order is harmless.
   */
  increment (replica: ReplicaId, by: bigint): Entry {
    if (by <= 0n) throw new RangeError('increment must be positive')
    const count = this.count(replica) + by
    this.entries.set(replica, count)
    this.sum += by
    return { replica, count }
  }

  /** Merge one entry (point-wise max). Returns the previous count if it grew, else undefined. */
  mergeEntry (replica: ReplicaId, count: bigint): bigint | undefined {
    const old = this.count(replica)
    if (count <= old) return undefined
    this.entries.set(replica, count)
    this.sum += count - old
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
    c.merge(this.entries)
    return c
  }
}
