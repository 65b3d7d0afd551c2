// The replica: every dataset in memory, durable local writes, merge of remote
// state, the member list and the join gate. The front ends (through the
// service) and the network layer talk only to this object; it uses the pure
// data types (src/crdt/) and the store.
//
// Datasets are registered once (counters today; see src/crdt/dataset.ts for
// how a new type joins): gossip, anti-entropy, consistent reads, the store
// and the digest then carry it without knowing what it is.
import type { DatasetKind, DatasetState, Entry } from './crdt/dataset.js'
import { counterKind, type CounterSet } from './crdt/gcounter.js'
import { DigestTree } from './crdt/digest.js'
import { metrics } from './metrics.js'
import type { Store, PlacedEntry, IdempotencyRecord } from './store/store.js'
import { Membership, JoinGate, JOIN_WAIT_MS, isRetired, type Member } from './membership.js'
import { NotJoinedError, IdempotencyConflictError } from './errors.js'
import { Listeners } from './util/listeners.js'

export { NotJoinedError, IdempotencyConflictError, isRetired }
export type { Member, Entry }

/** Every data type this version replicates, by tag. */
export const DATASETS: ReadonlyArray<DatasetKind<any>> = [counterKind]

export class Replica {
  readonly kinds = new Map<string, DatasetKind>()
  private readonly states = new Map<string, DatasetState>()
  readonly counters: CounterSet
  readonly digest = new DigestTree()
  readonly members: Membership
  readonly gate: JoinGate
  /** Number of entries of every dataset (for the sync descent). */
  entryCount = 0
  /** Own entries that became durable: to be gossiped. */
  readonly localDelta = new Listeners<Entry[]>()
  /**
   * Own count of counters with increments not yet durable (the count the
   * next increment builds on); absent = the counter's own count.
   */
  private readonly ownPending = new Map<string, bigint>()
  /** How long an Idempotency-Key is remembered (ms). */
  idempotencyWindowMs = 24 * 3600 * 1000
  /** Keyed increments not yet durable: a concurrent retry waits for the first. */
  private readonly pendingKeyed = new Map<string, Promise<bigint>>()
  readonly lookup = (tag: string): DatasetKind | undefined => this.kinds.get(tag)

  constructor (readonly id: string, private readonly store: Store, kinds: ReadonlyArray<DatasetKind<any>> = DATASETS) {
    for (const kind of kinds) {
      this.kinds.set(kind.tag, kind)
      this.states.set(kind.tag, kind.create())
    }
    this.counters = this.stateOf(counterKind)
    this.members = new Membership(id, store)
    this.gate = new JoinGate(store, this.members)
  }

  stateOf<S extends DatasetState> (kind: DatasetKind<S>): S {
    const s = this.states.get(kind.tag)
    if (s === undefined) throw new Error(`dataset ${kind.name} is not registered`)
    return s as S
  }

  /** Digest-tree leaf of an entry (the store keys entries by it). */
  readonly leafOf = (e: Entry): number => (this.kinds.get(e.ds) as DatasetKind).leafOf(e.key, e.sub)

  /** Load persisted entries and members. */
  async load (): Promise<void> {
    await this.members.load()
    await this.gate.load()
    for await (const chunk of this.store.entries()) {
      for (const e of chunk) this.apply(e)
    }
  }

  writable (): boolean { return this.gate.writable() }

  // ---- generic: durable own writes, merge of remote state, what sync sends ----

  /**
   * Make own entries durable (fsync'd, with idempotency records and meta
   * values in the same batch), then visible, then announced for gossip.
   * Nothing is visible (to reads or peers) before it is durable, so values
   * never go down after a crash. `answer` runs in the same tick the entries
   * become visible (so concurrent writers each see their own effect) and its
   * result is returned. Throws NotJoinedError, DiskFullError or
   * StorageError; then nothing was written or counted.
   */
  async writeOwn<T> (entries: Entry[], answer: () => T, records: Array<[string, IdempotencyRecord]> = [], meta: Array<[string, string]> = []): Promise<T> {
    // Right after start, wait briefly for the join rather than refuse.
    if (!this.writable() && !await this.gate.whenWritable(JOIN_WAIT_MS)) throw new NotJoinedError()
    const placed = entries.map(e => this.place(e))
    await this.store.writeDurable(placed, records, meta)
    for (const e of placed) this.apply(e)
    const result = answer()
    if (entries.length > 0) this.localDelta.emit(entries)
    return result
  }

  /**
   * Merge entries from a peer; resolves with those that grew here. They are
   * handed to LevelDB first and become visible in the same tick LevelDB has
   * them, so a value shown to a client survives a killed process.
   */
  async mergeRemote (entries: Entry[]): Promise<Entry[]> {
    const candidates: PlacedEntry[] = []
    for (const e of entries) {
      const state = this.states.get(e.ds)
      if (state !== undefined && e.value > state.get(e.key, e.sub)) candidates.push(this.place(e))
    }
    if (candidates.length === 0) return []
    const grown: Entry[] = []
    await this.store.writeLazy(candidates, () => {
      for (const e of candidates) if (this.apply(e)) grown.push(unplaced(e))
    })
    return grown
  }

  /** Every entry of every dataset under the given digest-tree nodes at `depth`. */
  async entriesUnder (depth: number, nodes: number[]): Promise<Entry[]> {
    const prefixes = nodes.map(n => depth === 0 ? '' : n.toString(16).padStart(depth, '0'))
    const out: Entry[] = []
    for (const tag of this.kinds.keys()) {
      for (const e of await this.store.entriesUnder(tag, prefixes)) out.push(unplaced(e))
    }
    return out
  }

  /** Every entry of one key of a dataset whose key sits in one leaf (counters). */
  entriesOfKey (tag: string, key: string): Entry[] {
    if (tag === counterKind.tag) return this.entriesOf(key).map(([sub, value]) => ({ ds: tag, key, sub, value }))
    return []
  }

  private place (e: Entry): PlacedEntry {
    return { ds: e.ds, key: e.key, sub: e.sub, value: e.value, leaf: this.leafOf(e) }
  }

  private apply (e: PlacedEntry): boolean {
    const kind = this.kinds.get(e.ds)
    const state = this.states.get(e.ds)
    if (kind === undefined || state === undefined) return false
    const old = state.apply(e.key, e.sub, e.value)
    if (old === undefined) return false
    this.digest.replace(e.leaf, old === 0n ? undefined : kind.hashOf(e.key, e.sub, old), kind.hashOf(e.key, e.sub, e.value))
    if (old === 0n) this.entryCount++
    // Whoever wrote an entry is a member (counters: the replica counted).
    const owner = kind.ownerOf(e.key, e.sub)
    if (owner !== undefined && !this.members.has(owner)) this.members.note(owner)
    return true
  }

  // ---- counters ----

  value (name: string): bigint { return this.counters.value(name) }

  entriesOf (name: string): Array<[string, bigint]> {
    const out: Array<[string, bigint]> = []
    this.counters.byName.get(name)?.forEach((count, replica) => out.push([replica, count]))
    return out
  }

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
    const inFlight = this.ownCount(name) - this.counters.get(name, this.id)
    const value = this.value(name) + inFlight + by
    const record: IdempotencyRecord = { name, by: by.toString(), value: value.toString(), expiresAt: now + this.idempotencyWindowMs }
    await this.incrementMany([[name, by]], [[key, record]])
    return value
  }

  /**
   * Add every (name, by) atomically and durably; resolve with each counter's
   * new local value once the batch is fsync'd.
   */
  async incrementMany (items: Array<[string, bigint]>, records: Array<[string, IdempotencyRecord]> = []): Promise<bigint[]> {
    if (!this.writable() && !await this.gate.whenWritable(JOIN_WAIT_MS)) throw new NotJoinedError()
    const entries: Entry[] = items.map(([name, by]) => {
      const count = this.ownCount(name) + by
      this.ownPending.set(name, count)
      return { ds: counterKind.tag, key: name, sub: this.id, value: count }
    })
    try {
      const values = await this.writeOwn(entries, () => entries.map(e => {
        if (this.ownPending.get(e.key) === e.value) this.ownPending.delete(e.key)
        return this.value(e.key)
      }), records)
      metrics.incrementsAccepted.inc(items.length)
      return values
    } catch (err) {
      // Not durable: forget the counts handed out above (and any built on
      // them: the store failed every write queued behind this one too).
      for (const e of entries) this.ownPending.delete(e.key)
      throw err
    }
  }

  /** Own count of `name` including increments not yet durable. */
  private ownCount (name: string): bigint {
    const applied = this.counters.get(name, this.id)
    const pending = this.ownPending.get(name) ?? 0n
    return pending > applied ? pending : applied
  }
}

function unplaced (e: PlacedEntry): Entry {
  return { ds: e.ds, key: e.key, sub: e.sub, value: e.value }
}
