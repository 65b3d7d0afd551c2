// The replica: every counter in memory, durable local increments, merge of
// remote state, and the member list. The HTTP API and the network layer talk
// only to this object; it uses the pure CRDT and the store.
import { GCounter, type Entry } from './crdt/gcounter.js'
import { DigestTree, leafOf, BITS_PER_LEVEL, DEPTH } from './crdt/digest.js'
import { metrics } from './metrics.js'
import type { Store, StoredEntry, MemberRecord, IdempotencyRecord } from './store/store.js'

export type Member = MemberRecord

/**
 * Retired by an operator (DELETE /members/:id) and not seen since: no longer
 * needed for consistent reads. Both times only grow, so the rule merges the
 * same way on every node whatever order the news arrives in.
 */
export function isRetired (m: Member): boolean {
  return (m.retiredAt ?? 0) > m.lastSeen
}

/** How long an increment waits for a not-yet-joined replica to join. */
const JOIN_WAIT_MS = 3000

import { NotJoinedError, IdempotencyConflictError } from './errors.js'
export { NotJoinedError, IdempotencyConflictError }

export interface ReplicaEvents {
  /** Own increments that became durable (full new counts): to be gossiped. */
  onLocalDelta?: (entries: StoredEntry[]) => void
  /** A replica id not seen before showed up (as a peer or a contributor). */
  onNewMember?: (m: Member) => void
  /** The store could not make an increment durable: the node must stop. */
  onFatal?: (err: Error) => void
}

export class Replica {
  readonly counters = new Map<string, GCounter>()
  readonly digest = new DigestTree()
  readonly members = new Map<string, Member>()
  /**
   * Own count of counters with increments not yet durable (the count the
   * next increment builds on); absent = the counter's own count.
   */
  private readonly ownPending = new Map<string, bigint>()
  /** One string instance per replica id: millions of entries share a few ids. */
  private readonly replicaIds = new Map<string, string>()
  events: ReplicaEvents = {}
  /** How long an Idempotency-Key is remembered (ms). */
  idempotencyWindowMs = 24 * 3600 * 1000
  /** Another member has synced with this replica id (persisted). */
  private joined = false
  /** Peers were configured or known: this replica belongs to a cluster. */
  clusterExpected = false
  private readonly joinWaiters: Array<() => void> = []
  /** Keyed increments not yet durable: a concurrent retry waits for the first. */
  private readonly pendingKeyed = new Map<string, Promise<bigint>>()

  constructor (readonly id: string, private readonly store: Store) {}

  /** Load persisted counters and members. */
  async load (): Promise<void> {
    for (const m of await this.store.members()) this.members.set(m.id, m)
    this.joined = await this.store.flag('joined')
    for await (const chunk of this.store.entries()) {
      for (const e of chunk) this.apply(e.name, e.replica, e.count)
    }
    this.noteMember(this.id, [], Date.now())
  }

  /**
   * Whether increments may be acknowledged. A replica that belongs to a
   * cluster (peers configured or known) but that no other member has heard
   * of yet refuses them: a consistent read elsewhere could not know to ask
   * it, and would answer 200 without its increments. Once one member has
   * synced with it, every consistent read finds it through that member's
   * member list. A node with no peers is a one-node cluster and may write.
   */
  writable (): boolean {
    return this.joined || !(this.clusterExpected || this.members.size > 1)
  }

  /** Another member completed a sync with us: it knows this replica id now. */
  markJoined (): void {
    if (this.joined) return
    this.joined = true
    this.store.setFlag('joined').catch(() => {})
    for (const wake of this.joinWaiters.splice(0)) wake()
  }

  /** Resolve once writable, or after `timeoutMs`; returns writable(). */
  async whenWritable (timeoutMs: number): Promise<boolean> {
    if (this.writable()) return true
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, timeoutMs)
      this.joinWaiters.push(() => { clearTimeout(timer); resolve() })
    })
    return this.writable()
  }

  // ---- reads ----

  value (name: string): bigint { return this.counters.get(name)?.value ?? 0n }

  entriesOf (name: string): Array<[string, bigint]> {
    const out: Array<[string, bigint]> = []
    this.counters.get(name)?.forEach((count, replica) => out.push([replica, count]))
    return out
  }

  // ---- local increments ----

  async increment (name: string, by: bigint): Promise<bigint> {
    return (await this.incrementMany([[name, by]]))[0]
  }

  /**
   * An increment that counts once per `key` within the idempotency window
   * (per node): a retry gets the first answer back. The answer is stored in
   * the same synced batch as the increment, so this holds across crashes.
   */
  async incrementOnce (key: string, name: string, by: bigint, now: number): Promise<bigint> {
    const pending = this.pendingKeyed.get(key)
    if (pending !== undefined) {
      await pending.catch(() => {})
      return await this.incrementOnce(key, name, by, now)
    }
    const done = this.keyedIncrement(key, name, by, now)
    this.pendingKeyed.set(key, done)
    try {
      return await done
    } finally {
      this.pendingKeyed.delete(key)
    }
  }

  private async keyedIncrement (key: string, name: string, by: bigint, now: number): Promise<bigint> {
    const prior = await this.store.idempotencyRecord(key)
    if (prior !== undefined && prior.expiresAt > now) {
      if (prior.name !== name || prior.by !== by.toString()) {
        throw new IdempotencyConflictError(`Idempotency-Key was first used for +${prior.by} on "${prior.name}"`)
      }
      return BigInt(prior.value)
    }
    // The answer must be stored with the increment, before the value is
    // known for sure: use the value this increment produces over what is
    // visible plus own increments still in flight.
    const inFlight = this.ownCount(name) - (this.counters.get(name)?.count(this.id) ?? 0n)
    const value = this.value(name) + inFlight + by
    const record: IdempotencyRecord = { name, by: by.toString(), value: value.toString(), expiresAt: now + this.idempotencyWindowMs }
    await this.incrementMany([[name, by]], [[key, record]])
    return value
  }

  /**
   * Add every (name, by) atomically and durably; resolve with each counter's
   * new local value once the batch is fsync'd. Nothing is visible (to reads
   * or peers) before it is durable, so values never go down after a crash.
   */
  async incrementMany (items: Array<[string, bigint]>, records: Array<[string, IdempotencyRecord]> = []): Promise<bigint[]> {
    // Right after start, wait briefly for the first sync rather than refuse.
    if (!this.writable() && !await this.whenWritable(JOIN_WAIT_MS)) {
      throw new NotJoinedError()
    }
    const entries: StoredEntry[] = items.map(([name, by]) => {
      const count = this.ownCount(name) + by
      this.ownPending.set(name, count)
      return { name, replica: this.id, count }
    })
    try {
      await this.store.writeDurable(entries, records)
    } catch (err: any) {
      // Counts already handed out above can no longer be trusted; the
      // daemon stops rather than ack or reuse them.
      this.events.onFatal?.(err)
      throw err
    }
    const values = entries.map(e => {
      this.apply(e.name, e.replica, e.count)
      if (this.ownPending.get(e.name) === e.count) this.ownPending.delete(e.name)
      return this.value(e.name)
    })
    metrics.incrementsAccepted.inc(items.length)
    this.events.onLocalDelta?.(entries)
    return values
  }

  // ---- remote state ----

  /**
   * Merge entries from a peer; resolves with those that grew here. They are
   * handed to LevelDB first and become visible in the same tick LevelDB has
   * them, so a value shown to a client survives a killed process.
   */
  async mergeRemote (entries: StoredEntry[]): Promise<StoredEntry[]> {
    const candidates = entries.filter(e => e.count > (this.counters.get(e.name)?.count(e.replica) ?? 0n))
    if (candidates.length === 0) return []
    const grown: StoredEntry[] = []
    await this.store.writeLazy(candidates, () => {
      for (const e of candidates) {
        if (!this.apply(e.name, e.replica, e.count)) continue
        grown.push(e)
      }
    })
    return grown
  }

  /** Every entry of every counter under the given digest-tree nodes at `depth`. */
  entriesUnder (depth: number, nodes: Set<number>): StoredEntry[] {
    const shift = BITS_PER_LEVEL * (DEPTH - depth)
    const out: StoredEntry[] = []
    for (const [name, c] of this.counters) {
      if (!nodes.has(leafOf(name) >>> shift)) continue
      c.forEach((count, replica) => out.push({ name, replica, count }))
    }
    return out
  }

  /** Own count of `name` including increments not yet durable. */
  private ownCount (name: string): bigint {
    const applied = this.counters.get(name)?.count(this.id) ?? 0n
    const pending = this.ownPending.get(name) ?? 0n
    return pending > applied ? pending : applied
  }

  private apply (name: string, replica: string, count: bigint): boolean {
    let id = this.replicaIds.get(replica)
    if (id === undefined) {
      id = replica
      this.replicaIds.set(id, id)
    }
    replica = id
    let c = this.counters.get(name)
    if (c === undefined) {
      c = new GCounter()
      this.counters.set(name, c)
    }
    const old = c.mergeEntry(replica, count)
    if (old === undefined) return false
    this.digest.update(leafOf(name), name, replica, old, count)
    if (!this.members.has(replica)) this.noteMember(replica)
    return true
  }

  // ---- membership ----

  /** Record that `id` exists (and optionally where and when it was seen). */
  noteMember (id: string, addrs?: string[], seenAt?: number): Member {
    return this.mergeMember({ id, addrs: addrs ?? [], lastSeen: seenAt ?? 0 })
  }

  /** Merge what a peer (or we) know of a member: times take the max, addrs the newest. */
  mergeMember (news: Member): Member {
    let m = this.members.get(news.id)
    const isNew = m === undefined
    if (m === undefined) {
      m = { id: news.id, addrs: [], lastSeen: 0 }
      this.members.set(news.id, m)
    }
    let changed = isNew
    if (news.addrs.length > 0 && (m.addrs.length === 0 || news.lastSeen >= m.lastSeen) && news.addrs.join() !== m.addrs.join()) {
      m.addrs = news.addrs
      changed = true
    }
    // Persist last-seen at most every 10 s per member: it is advisory.
    if (news.lastSeen - m.lastSeen > 10000) changed = true
    m.lastSeen = Math.max(m.lastSeen, news.lastSeen)
    if ((news.retiredAt ?? 0) > (m.retiredAt ?? 0)) {
      m.retiredAt = news.retiredAt
      changed = true
    }
    if (changed) this.store.saveMember(m)
    if (isNew) this.events.onNewMember?.(m)
    return m
  }

  /** Retire a member for good: consistent reads stop waiting for it; its counts stay. */
  retire (id: string, now: number): boolean {
    const m = this.members.get(id)
    if (m === undefined || id === this.id) return false
    m.retiredAt = Math.max(now, m.lastSeen + 1)
    this.store.saveMember(m)
    return true
  }

  /** Members a consistent read must hear from (all but self and retired). */
  activeMembers (): Member[] {
    return [...this.members.values()].filter(m => m.id !== this.id && !isRetired(m))
  }
}

export type { Entry, StoredEntry }
