// The replica: every dataset in memory, durable local writes, merge of remote
// state, the member list and the join gate. The front ends (through the
// service) and the network layer talk only to this object; it uses the pure
// data types (src/crdt/) and the store.
//
// Datasets are registered once (counters today; see src/crdt/dataset.ts for
// how a new type joins): gossip, anti-entropy, consistent reads, the store
// and the digest then carry it without knowing what it is.
import type { DatasetKind, DatasetState, Entry, IdentityLayout } from './crdt/dataset.js'
import { counterKind, type CounterSet } from './crdt/gcounter.js'
import { itemKind, type ItemSets } from './crdt/gset.js'
import { slotKind, type SlotClaims } from './crdt/slotclaims.js'
import { DigestTree, nodePrefix, leavesPerNode, LEAF_BITS } from './crdt/digest.js'
import { metrics } from './metrics.js'
import type { Store, PlacedEntry, IdempotencyRecord, Placement } from './store/store.js'
import { Membership, JoinGate, JOIN_WAIT_MS, isRetired, type Member } from './membership.js'
import { NotJoinedError, IdempotencyConflictError } from './errors.js'
import { Listeners } from './util/listeners.js'
import { Map128 } from './util/map128.js'
import { itemHash, itemLeaf } from './crdt/itemhash.js'
import { typedView, bytesOf, packParts, unpackParts, text128, type Chunk } from './util/bytes.js'

export { NotJoinedError, IdempotencyConflictError, isRetired }
export type { Member, Entry }

/** Every data type this version replicates, by tag. */
export const DATASETS: ReadonlyArray<DatasetKind<any>> = [counterKind, itemKind, slotKind]

const identityScratch = new Uint32Array(4)

/** An entry with its leaf and, for a dataset stored by identity, its identity (where the store keeps it). */
export function placeEntry (kind: DatasetKind, e: Entry): PlacedEntry {
  const identity = kind.identity === undefined ? undefined : text128(kind.identity.identityOf(e.key, e.sub, identityScratch), 0)
  return { ds: e.ds, key: e.key, sub: e.sub, value: e.value, leaf: kind.leafOf(e.key, e.sub), firstWrite: false, identity }
}

/** placeEntry for the registered datasets (what Store.open needs to migrate a data dir). */
export function placementOf (kinds: ReadonlyArray<DatasetKind<any>> = DATASETS): Placement {
  const byTag = new Map(kinds.map(k => [k.tag, k]))
  return e => {
    const kind = byTag.get(e.ds)
    if (kind === undefined) throw new Error(`stored entry of unknown dataset ${e.ds}`)
    return placeEntry(kind, e)
  }
}

/**
 * The fingerprint (entry hash, hashOf) of every entry under some digest-tree
 * nodes, 2 words each, and the entries of some of them by index: anti-entropy
 * swaps fingerprints first and then reads only the entries the peer lacks.
 */
export interface Fingerprints {
  count: number
  hashes: Uint32Array
  entriesAt: (indices: number[]) => Promise<Entry[]>
}

export class Replica {
  readonly kinds = new Map<string, DatasetKind>()
  private readonly states = new Map<string, DatasetState>()
  get counters (): CounterSet { return this.stateOf(counterKind) }
  get items (): ItemSets { return this.stateOf(itemKind) }
  get slots (): SlotClaims { return this.stateOf(slotKind) }
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
  /** Item pairs being made durable (by their 128-bit hash), so a concurrent request does not count them twice. */
  private readonly pendingItems = new Map128<Promise<unknown>>()
  private readonly pairHash = new Uint32Array(4)
  /** Keyed increments not yet durable: a concurrent retry waits for the first. */
  private readonly pendingKeyed = new Map<string, Promise<bigint>>()
  readonly lookup = (tag: string): DatasetKind | undefined => this.kinds.get(tag)

  constructor (readonly id: string, private readonly store: Store, kinds: ReadonlyArray<DatasetKind<any>> = DATASETS) {
    for (const kind of kinds) {
      this.kinds.set(kind.tag, kind)
      this.states.set(kind.tag, kind.create())
    }
    this.members = new Membership(id, store)
    this.gate = new JoinGate(store, this.members)
  }

  stateOf<S extends DatasetState> (kind: DatasetKind<S>): S {
    const s = this.states.get(kind.tag)
    if (s === undefined) throw new Error(`dataset ${kind.name} is not registered`)
    return s as S
  }

  /**
   * Load members and every dataset: from the last snapshot when no entry was
   * written after it (seconds faster at millions of entries), else by
   * replaying every stored entry. Returns how it loaded.
   */
  async load (): Promise<'snapshot' | 'entries'> {
    await this.members.load()
    await this.gate.load()
    const snap = await this.store.takeSnapshot()
    if (snap !== undefined) {
      if (this.restore(snap)) return 'snapshot'
      await this.store.dropSnapshot()
    }
    for await (const chunk of this.store.entries()) {
      for (const e of chunk) this.apply(e)
    }
    return 'entries'
  }

  /**
   * Everything load() would rebuild, as bytes: the digest tree's levels and
   * each dataset's state, side by side (packParts: chunks to write in order,
   * read back as views). The digest's levels are live views, not copies: a
   * snapshot taken while running counts only if nothing was written until
   * its file is (Store.saveQuietSnapshot).
   */
  snapshot (): Chunk[] {
    const tags = [...this.kinds.keys()]
    const levels = this.digest.levels.map(bytesOf)
    const datasets = tags.map(tag => (this.kinds.get(tag) as DatasetKind).snapshot(this.states.get(tag) as DatasetState))
    return packParts({ v: 2, n: this.entryCount, d: levels.length, k: tags }, [...levels, ...datasets])
  }

  /** Take a snapshot() back; false (and nothing changed) if it does not fit this version. */
  private restore (bytes: Uint8Array): boolean {
    try {
      const { fields, parts } = unpackParts(bytes)
      const { v, n, d, k } = fields as { v: unknown, n: unknown, d: unknown, k: unknown }
      const levels = this.digest.levels
      if (v !== 2 || typeof n !== 'number' || d !== levels.length || !Array.isArray(k) || parts.length !== levels.length + k.length) return false
      const states = new Map<string, DatasetState>()
      for (const [tag, kind] of this.kinds) {
        const at = k.indexOf(tag)
        if (at === -1) return false
        states.set(tag, kind.restore(parts[levels.length + at]))
      }
      levels.forEach((level, i) => {
        if (parts[i].byteLength !== level.byteLength) throw new Error('digest size')
        level.set(typedView(parts[i], Uint32Array))
      })
      for (const [tag, state] of states) this.states.set(tag, state)
      this.entryCount = n
      return true
    } catch {
      for (const l of this.digest.levels) l.fill(0)
      return false
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
  async writeOwn<T> (entries: PlacedEntry[], answer: () => T, records: Array<[string, IdempotencyRecord]> = [], meta: Array<[string, string]> = []): Promise<T> {
    // Right after start, wait briefly for the join rather than refuse.
    if (!this.writable() && !await this.gate.whenWritable(JOIN_WAIT_MS)) throw new NotJoinedError()
    await this.store.writeDurable(entries, records, meta)
    for (const e of entries) this.apply(e)
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
      if (state !== undefined && e.value > state.get(e.key, e.sub)) candidates.push(this.placed(e))
    }
    if (candidates.length === 0) return []
    const grown: Entry[] = []
    await this.store.writeLazy(candidates, () => {
      for (const e of candidates) if (this.apply(e)) grown.push(unplaced(e))
    })
    metrics.itemsReceived.inc(grown.reduce((n, e) => e.ds === itemKind.tag ? n + 1 : n, 0))
    return grown
  }

  /** Every entry of every dataset (but those `skip` names) under the given digest-tree nodes at `depth`. */
  async entriesUnder (depth: number, nodes: number[], skip?: (tag: string) => boolean): Promise<Entry[]> {
    let prefixes: string[] | undefined // only for datasets read from the store
    const span = leavesPerNode(depth)
    const out: Entry[] = []
    for (const [tag, state] of this.states) {
      if (state.keys === 0 || skip?.(tag) === true) continue // memory mirrors the store: nothing of it to read there
      if (state.forEachInLeaves !== undefined) {
        // Held whole in memory: what memory holds is what is durable (writeOwn, mergeRemote).
        for (const n of nodes) state.forEachInLeaves(n * span, (n + 1) * span, (key, sub, value) => { out.push({ ds: tag, key, sub, value }) })
      } else {
        prefixes ??= nodes.map(n => nodePrefix(depth, n))
        for (const e of await this.store.entriesUnder(tag, prefixes, this.entryCount)) out.push(unplaced(e))
      }
    }
    return out
  }

  /**
   * The fingerprints of every entry under the given nodes at `depth`, from
   * memory for the datasets held whole there and for those stored by
   * identity (items: only the entries asked for by index are read, by exact
   * key), from the store for the rest.
   */
  async fingerprintsUnder (depth: number, nodes: number[]): Promise<Fingerprints> {
    const byIdentity: Array<{ tag: string, layout: IdentityLayout, words: Uint32Array }> = []
    const span = leavesPerNode(depth)
    let leaves: Uint8Array | undefined
    for (const [tag, state] of this.states) {
      const layout = this.kinds.get(tag)?.identity
      if (state.keys === 0 || layout === undefined || state.identitiesInLeaves === undefined) continue
      if (leaves === undefined) {
        leaves = new Uint8Array(1 << LEAF_BITS)
        for (const n of nodes) leaves.fill(1, n * span, (n + 1) * span)
      }
      byIdentity.push({ tag, layout, words: state.identitiesInLeaves(leaves) })
    }
    const whole = await this.entriesUnder(depth, nodes, tag => byIdentity.some(b => b.tag === tag))
    const count = byIdentity.reduce((n, b) => n + b.words.length / 4, whole.length)
    const hashes = new Uint32Array(count * 2)
    whole.forEach((e, i) => {
      const [a, b] = (this.kinds.get(e.ds) as DatasetKind).hashOf(e.key, e.sub, e.value)
      hashes[2 * i] = a
      hashes[2 * i + 1] = b
    })
    let at = whole.length
    for (const { layout, words } of byIdentity) {
      for (let w = 0; w < words.length; w += 4, at++) {
        const [a, b] = layout.hashOfIdentity(words, w)
        hashes[2 * at] = a
        hashes[2 * at + 1] = b
      }
    }
    const entriesAt = async (indices: number[]): Promise<Entry[]> => {
      const out: Entry[] = []
      const refs = byIdentity.map(() => [] as Array<{ leaf: number, identity: string }>)
      for (const i of indices) {
        if (i < whole.length) {
          out.push(whole[i])
          continue
        }
        let j = i - whole.length
        let b = 0
        while (j >= byIdentity[b].words.length / 4) j -= byIdentity[b++].words.length / 4
        const { layout, words } = byIdentity[b]
        refs[b].push({ leaf: layout.leafOfIdentity(words, 4 * j), identity: text128(words, 4 * j) })
      }
      for (let b = 0; b < byIdentity.length; b++) {
        if (refs[b].length > 0) for (const e of await this.store.entriesByIdentity(byIdentity[b].tag, refs[b])) out.push(unplaced(e))
      }
      return out
    }
    return { count, hashes, entriesAt }
  }

  /** Every entry of one key, for datasets that keep a key's entries together (DatasetState.subsOf). */
  entriesOfKey (tag: string, key: string): Entry[] {
    return (this.states.get(tag)?.subsOf?.(key) ?? []).map(([sub, value]) => ({ ds: tag, key, sub, value }))
  }

  /** Persist small values of this replica (ID lease, ...) with fsync, sharing group commits. */
  async persistMeta (name: string, value: string): Promise<void> {
    await this.store.writeDurable([], [], [[name, value]])
  }

  async meta (name: string): Promise<string | undefined> { return await this.store.meta(name) }

  /** An entry with its leaf and identity (what writeOwn takes). */
  placed (e: Entry): PlacedEntry {
    return placeEntry(this.kinds.get(e.ds) as DatasetKind, e)
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

  entriesOf (name: string): Array<[string, bigint]> { return this.counters.subsOf(name) }

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
   * new local value once the batch is fsync'd: the value this increment made,
   * so a name given twice answers two values in order (a Redis pipeline's
   * INCR x, INCR x answers 1, 2).
   */
  async incrementMany (items: Array<[string, bigint]>, records: Array<[string, IdempotencyRecord]> = []): Promise<bigint[]> {
    if (!this.writable() && !await this.gate.whenWritable(JOIN_WAIT_MS)) throw new NotJoinedError()
    const entries: PlacedEntry[] = items.map(([name, by]) => {
      const count = this.ownCount(name) + by
      this.ownPending.set(name, count)
      return { ds: counterKind.tag, key: name, sub: this.id, value: count, leaf: counterKind.leafOf(name, this.id), firstWrite: false, coalesce: name }
    })
    try {
      const values = await this.writeOwn(entries, () => entries.map(e => {
        if (this.ownPending.get(e.key) === e.value) this.ownPending.delete(e.key)
        return this.counters.valueWith(e.key, this.id, e.value)
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

  // ---- items ----

  /**
   * Add (tenant, id) pairs, all-or-nothing, durable before resolving.
   * `added` counts the pairs new to this replica. A pair another request is
   * still making durable is not new here, but this answer waits for that
   * write too: an acknowledged pair is always durable.
   */
  async addItems (items: Array<{ tenant: string, id: string }>): Promise<{ accepted: number, added: number }> {
    const fresh: PlacedEntry[] = []
    const freshHashes = new Uint32Array(items.length * 4)
    const waitFor = new Set<Promise<unknown>>()
    // Settles with this request's write: others that send a pair of it meanwhile wait for it.
    let settle!: { resolve: () => void, reject: (err: unknown) => void }
    const mine = new Promise<void>((resolve, reject) => { settle = { resolve, reject } })
    mine.catch(() => {})
    const h = this.pairHash
    const index = this.items.index
    for (const { tenant, id } of items) {
      itemHash(tenant, id, h)
      if (index.has(h[0], h[1], h[2], h[3])) continue
      const pending = this.pendingItems.get(h)
      if (pending === mine) continue // given twice in this request
      if (pending !== undefined) {
        waitFor.add(pending)
        continue
      }
      this.pendingItems.set(h, mine)
      freshHashes.set(h, fresh.length * 4)
      // New here and in no other request's write: its key is written once (PlacedEntry.firstWrite).
      fresh.push({ ds: itemKind.tag, key: tenant, sub: id, value: 1n, leaf: itemLeaf(h[0]), firstWrite: true, identity: text128(h, 0) })
    }
    try {
      const added = await this.writeOwn(fresh, () => fresh.length)
      settle.resolve()
      await Promise.all(waitFor)
      metrics.itemsAdded.inc(added)
      return { accepted: items.length, added }
    } catch (err) {
      settle.reject(err)
      throw err
    } finally {
      for (let i = 0; i < fresh.length; i++) this.pendingItems.delete(freshHashes, 4 * i)
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
