// LevelDB persistence for one replica. The store knows entries of datasets
// (src/crdt/dataset.ts) only as (tag, leaf, key, sub) -> value; it never
// looks inside a data type.
//
// Key layout (utf8), version 2:
//   e/<tag>/<leaf as 5 hex>/<key>/<sub> -> decimal value   (one entry of a dataset)
//   e/<tag>/<leaf as 5 hex>/#<identity as 22 base64url> -> <decimal value>/<key>/<sub>
//                                       (an entry of a dataset stored by identity: items; see IdentityLayout)
//   m/<replicaId>                       -> JSON MemberRecord (membership)
//   meta/identity                       -> hex of the libp2p private key (protobuf)
//   meta/joined                         -> '1' once a member is known to know us
//   meta/layout                         -> '3' (this layout)
//   meta/snapshot                       -> checksum of snapshot.bin, while no entry was written since it (see saveSnapshot)
//   meta/<name>                         -> small values of the replica (ID lease, ...)
//   i/<idempotency key>                 -> JSON IdempotencyRecord
//   meta/journal                        -> time of the last flush that let journal files go (syncDb, journal.ts)
//   meta/folded                         -> "<seq>:<end>": the journal is folded up to there (written with each fold; a start replays only what follows)
//   w/<sequence as 16 hex>              -> legacy journal record (before the journal file): JSON [key, value|null, ...]
// and beside LevelDB, <data-dir>/journal/<seq>.log: the journal of own writes (journal.ts).
// The leaf is the entry's digest-tree leaf, one hex digit per tree level, so
// the entries under any tree node are one key range: anti-entropy reads what
// differs straight from LevelDB; an entry stored by identity is also read by
// its exact key when only its identity is known (anti-entropy's fingerprints
// come from memory). Version 1 kept counters as c/<name>/<replica>; version 2
// kept items as e/s/<leaf>/<tenant>/<id> -> 1; open() migrates such a data dir
// once (see migrateV1, migrateToIdentities).
//
// All writes go through a group writer: callers that arrive while a batch is
// being written join the next batch, so N concurrent writers cost one LevelDB
// write (and, for own writes, one fsync) instead of N. Entries learned from
// peers and membership are written without fsync: once LevelDB returns they
// are in the OS and survive a killed process; after a machine crash they are
// fetched again from the cluster.
//
// Own writes are acknowledged once their group commit is in the journal: ONE
// fdatasync'd record in an append-only file beside LevelDB (journal.ts)
// holding every key of the group, however many (a LevelDB write costs per
// key, so 5,000 keys synced took 23-88 ms; and a synced LevelDB put waits
// behind every unsynced batch in LevelDB's single writer queue). The keys are
// folded into their own LevelDB keys later, by the unsynced writer, in one
// batch per FOLD_DELAY_MS (or per FOLD_KEYS keys), holding only the newest
// value of each key: a counter incremented 50 times in that window costs one
// LevelDB put, not 50 (a LevelDB put was ~40 % of a batched increment's CPU).
// Until its fold lands a key is "unfolded": reads of the store (entriesUnder,
// get) overlay it, so nothing acknowledged is ever invisible.
// open() folds the records a killed process left; a store that recovers from a
// failed write folds them again before it takes writes.
//
// A write that fails (disk full, I/O error) fails its batch and everything
// queued behind it, and puts the store in a degraded state: writes fail fast
// (DiskFullError / StorageError) while the store reopens LevelDB in the
// background (LevelDB refuses every write after some failures until it is
// reopened) and probes with a synced write; once that succeeds, writes resume.
// Reads served from memory are unaffected.
import { existsSync, mkdirSync, renameSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { crc32 } from 'node:zlib'
import { open } from 'node:fs/promises'
import { Level } from 'level'
import type { Entry } from '../crdt/dataset.js'
import { Journal, formatPosition, parsePosition, type JournalRecord, type JournalPosition } from './journal.js'
import { DEPTH, leafHex } from '../crdt/digest.js'
import { chunkBytes, type Chunk } from '../util/bytes.js'
import { DataDirLockedError, DiskFullError, StorageError } from '../errors.js'
export { DataDirLockedError }

/** An entry with its digest-tree leaf, as the store keeps it. */
export interface PlacedEntry extends Entry {
  leaf: number
  /**
   * Set by a writer of own entries that knows the key holds nothing yet and
   * is written only once until its fold lands (an item new to the replica):
   * the fold then takes it as it is, without looking the key up among the
   * waiting ones (that lookup was 9 % of POST /items).
   */
  firstWrite?: boolean
  /** The entry's 128-bit identity as text (text128), for datasets stored by identity (IdentityLayout): its store key. */
  identity?: string
  /**
   * For own writes: a shorter key than the store key that still tells this
   * entry apart from every other own write, by which the fold keeps only the
   * newest of a key (a counter's name: names hold no '/', store keys all do,
   * and an own count's sub is always this replica). Hashing the ~90-character
   * store key of every increment was 7-8 % of POST /counters.
   */
  coalesce?: string
}

/** Where a dataset's entry goes in the store: its leaf, and its identity if stored by identity (what open() needs to migrate). */
export type Placement = (e: Entry) => PlacedEntry

export interface MemberRecord {
  id: string
  addrs: string[]
  lastSeen: number
  /** When an operator retired it (ms since epoch). */
  retiredAt?: number
}

/** The first answer to an increment sent with an Idempotency-Key. */
export interface IdempotencyRecord {
  name: string
  by: string
  value: string
  expiresAt: number
}

type BatchOp = { type: 'put', key: string, value: string, grows?: bigint, once?: boolean, coalesce?: string } | { type: 'del', key: string }

/**
 * Own writes in the journal but not in their own keys yet: the newest op of
 * each key, the first writes (PlacedEntry.firstWrite) as they came (written
 * before `ops`, so a later op of the same key lands over them), and the
 * journal files of their records.
 */
interface Fold {
  /** By store key, or by the op's coalescing key (PlacedEntry.coalesce) where it has one. */
  ops: Map<string, BatchOp>
  once: BatchOp[]
  files: number[]
  upTo?: JournalPosition
}
const newFold = (): Fold => ({ ops: new Map(), once: [], files: [] })
const foldSize = (f: Fold): number => f.ops.size + f.once.length

interface Waiter {
  /** Runs synchronously right after the batch is written, before the next one starts. */
  onWritten?: () => void
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * LevelDB's memtable size (default 4 MiB). Every journal record passes
 * through the memtable, so at 4 MiB a busy node flushed and compacted every
 * few group commits and synced writes stalled behind that (section 6 of the
 * bench: p50 91 ms). Costs up to twice this in RSS.
 */
const WRITE_BUFFER_BYTES = 32 << 20

/**
 * A seek and its read cost about what reading this many entries in bulk
 * does (with RANGE_READERS in parallel): past that many ranges per stored
 * entry, entriesUnder scans instead of seeking.
 */
const SEEKS_PER_SCANNED_ENTRY = 16

/** Iterators that read the ranges of one entriesUnder call in parallel (libuv runs 4 LevelDB reads at once). */
const RANGE_READERS = 4

/**
 * A quiet node lets a journal file of at least this much go (checkpointWhenQuiet):
 * less is replayed in well under 0.1 s, and each such file costs a new spare
 * of ROTATE_BYTES zeros.
 */
const CHECKPOINT_MIN_BYTES = 4 << 20

/** Own writes wait at most this long in the journal before their fold into LevelDB starts... */
const FOLD_DELAY_MS = 500
/** ...or until this many keys wait (each costs ~200 bytes of overlay, and entriesUnder scans the overlay). */
const FOLD_KEYS = 50_000

/**
 * The longest a group commit waits for more writers to join it (see
 * GroupWriter.gather). redis-benchmark INCR, 50 clients, A/B back to back:
 * 12,900 / 11,900 commands/s without (25 writes per fsync) against 16,800 /
 * 16,500 with 1 ms (42 per fsync); 0.3 ms gave 13,900, 2 ms 18,500 (vs 22,400).
 */
const GATHER_MS = 1

/** Hex digits of a leaf in a key: one per digest-tree level. */
const LEAF_HEX = DEPTH
export const entryKey = (e: PlacedEntry): string => e.identity === undefined ? `e/${e.ds}/${leafHex(e.leaf)}/${e.key}/${e.sub}` : identityKey(e.ds, e.leaf, e.identity)
const identityKey = (tag: string, leaf: number, identity: string): string => `e/${tag}/${leafHex(leaf)}/#${identity}`
const memberKey = (id: string): string => `m/${id}`
const IDENTITY_KEY = 'meta/identity'
const LAYOUT_KEY = 'meta/layout'
/** The layout this version writes (see the file comment). */
const LAYOUT = '3'
const SNAPSHOT_KEY = 'meta/snapshot'
const JOURNAL_KEY = 'meta/journal'
const FOLDED_KEY = 'meta/folded'
const idempotencyKey = (key: string): string => `i/${key}`

function entryOp (e: PlacedEntry): BatchOp {
  const value = e.identity === undefined ? e.value.toString() : `${e.value}/${e.key}/${e.sub}`
  return { type: 'put', key: entryKey(e), value, grows: e.value, once: e.firstWrite === true, coalesce: e.coalesce }
}

/** Where an entry's key (or, stored by identity, its value's key) starts in a stored key. */
const KEY_START = 5 + LEAF_HEX
/** Whether a stored entry key is of an entry stored by identity (e/<tag>/<leaf>/#<identity>). */
const isIdentityKey = (key: string): boolean => key.charCodeAt(KEY_START) === 0x23 // '#'

function parseEntryKey (key: string, value: string): PlacedEntry {
  // e/<tag>/<leaf>/<key>/<sub>: the key never contains '/', the sub may.
  const ds = key[2]
  const leaf = parseInt(key.slice(4, 4 + LEAF_HEX), 16)
  if (isIdentityKey(key)) {
    // e/<tag>/<leaf>/#<identity> -> <value>/<key>/<sub>
    const v = value.indexOf('/')
    const k = value.indexOf('/', v + 1)
    return { ds, leaf, key: value.slice(v + 1, k), sub: value.slice(k + 1), value: BigInt(value.slice(0, v)) }
  }
  const slash = key.indexOf('/', KEY_START)
  return { ds, leaf, key: key.slice(KEY_START, slash), sub: key.slice(slash + 1), value: BigInt(value) }
}

/** An acknowledged entry write still waiting for its fold (Store.unfoldedEntries). */
interface UnfoldedEntry { key: string, value: string, grows: bigint }

/** The stored entries read, each replaced by an unfolded write of its key that is larger (or added), parsed. */
function withOverlay (found: Map<string, string>, overlay: UnfoldedEntry[]): PlacedEntry[] {
  for (const op of overlay) {
    const stored = found.get(op.key)
    if (stored === undefined || storedValue(op.key, stored) < op.grows) found.set(op.key, op.value)
  }
  const out: PlacedEntry[] = []
  for (const [key, value] of found) out.push(parseEntryKey(key, value))
  return out
}

/** The value of a stored entry (either layout). */
function storedValue (key: string, value: string): bigint {
  return BigInt(isIdentityKey(key) ? value.slice(0, value.indexOf('/')) : value)
}

/** What a failed LevelDB write means for the client: a full disk, or another I/O failure. */
export function classifyWriteError (err: any): Error {
  const text = `${String(err?.message)} ${String(err?.cause?.message)} ${String(err?.code)} ${String(err?.cause?.code)}`
  if (/ENOSPC|No space left|disk full/i.test(text)) return new DiskFullError()
  return new StorageError(`the write could not be made durable (${String(err?.cause?.message ?? err?.message)}); it was not counted`)
}

/**
 * Group commit: one batch in flight at a time; everything queued meanwhile
 * becomes the next batch. (One at a time measured fastest for synced
 * batches here, 50 clients: ~9k inc/s vs ~7k with two and ~6k with four in
 * flight.) Entry keys never go backwards: a value is only queued if it is
 * larger than what is queued or being written for that key.
 */
class GroupWriter {
  private queue = new Map<string, BatchOp>()
  /** Lists of ops written as they are, after the queue's (writeBulk). */
  private bulk: Array<Iterable<BatchOp>> = []
  private waiters: Waiter[] = []
  private inFlight = new Map<string, BatchOp>()
  private writing = false
  onBatch?: (size: number, ms: number) => void

  constructor (
    /** Writes one batch (these lists of ops, in order); a failure fails it and everything queued behind it. */
    private readonly commit: (ops: Array<Iterable<BatchOp>>) => Promise<void>,
    /** Fails writes fast while the store is degraded; told of each failure. */
    private readonly health: StoreHealth
  ) {}

  async write (ops: BatchOp[], onWritten?: () => void): Promise<void> {
    this.health.check()
    for (const op of ops) {
      if (op.type === 'put' && op.grows !== undefined && !this.grows(op.key, op.grows)) continue
      this.queue.set(op.key, op)
    }
    return this.nextBatch(onWritten)
  }

  /**
   * Ops written as they are, in the order queued, after the queue's ops of
   * the same batch: no per-op check. For writes whose values per key only
   * grow in the order they are queued: own writes (counts built on the
   * pending ones, items of value 1, records and meta values whose last write
   * wins) and the folds of own writes, already coalesced per key. (The
   * check cost 5 % of POST /counters: two lookups of a long key per op.)
   */
  async writeBulk (ops: Iterable<BatchOp>): Promise<void> {
    this.health.check()
    this.bulk.push(ops)
    return this.nextBatch()
  }

  /** Settles once the batch holding what was just queued has been written (or failed). */
  private nextBatch (onWritten?: () => void): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ onWritten, resolve, reject }))
    if (!this.writing) void this.run()
    return done
  }

  get idle (): boolean { return !this.writing && this.waiters.length === 0 }

  /** Resolves once everything queued so far has been written or has failed (never rejects, even when degraded). */
  async settled (): Promise<void> {
    if (this.idle) return
    await new Promise<void>(resolve => this.waiters.push({ resolve, reject: () => resolve() }))
  }

  private grows (key: string, value: bigint): boolean {
    return !covers(this.queue.get(key), value) && !covers(this.inFlight.get(key), value)
  }

  /**
   * Wait while each turn of the event loop brings more writers, up to
   * GATHER_MS: clients answered by the last commit send their next write
   * within tens of microseconds, and one fsync for all of them beats two.
   */
  private async gather (): Promise<void> {
    const until = performance.now() + GATHER_MS
    let seen: number
    do {
      seen = this.waiters.length
      await new Promise(resolve => setImmediate(resolve))
    } while (this.waiters.length > seen && performance.now() < until)
  }

  private async run (): Promise<void> {
    this.writing = true
    try {
      while (this.waiters.length > 0) {
        // Let this turn of the event loop finish first: requests already
        // received join this batch instead of the next one (as Redis fsyncs
        // once per event-loop turn).
        await this.gather()
        const waiters = this.waiters
        const bulk = this.bulk
        this.inFlight = this.queue
        this.queue = new Map()
        this.bulk = []
        this.waiters = []
        const started = performance.now()
        try {
          if (this.inFlight.size > 0 || bulk.length > 0) await this.commit([this.inFlight.values(), ...bulk])
        } catch (err: any) {
          // Writes queued behind a failed one may have been skipped in its
          // favour (a larger value was in it): they fail too.
          const failure = this.health.failed(err)
          this.inFlight = new Map()
          this.queue = new Map()
          this.bulk = []
          for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(failure)
          break
        }
        this.inFlight = new Map()
        this.onBatch?.(waiters.length, performance.now() - started)
        for (const w of waiters) w.onWritten?.()
        for (const w of waiters) w.resolve()
      }
    } finally {
      this.writing = false
    }
  }
}

/**
 * Coalesce `op` into `ops` (one op per key, the newest), except that an
 * entry's value never goes back: a put of a smaller value than the one held
 * is dropped. Own writes only grow in the order they are queued; this keeps
 * the store's promise even for a caller that does not.
 */
function keepLargest (ops: Map<string, BatchOp>, op: BatchOp): void {
  const key = op.type === 'put' ? op.coalesce ?? op.key : op.key
  if (op.type === 'put' && op.grows !== undefined && covers(ops.get(key), op.grows)) return
  ops.set(key, op)
}

/** Whether a queued op already puts `value` or more. */
function covers (prev: BatchOp | undefined, value: bigint): boolean {
  return prev !== undefined && prev.type === 'put' && prev.grows !== undefined && prev.grows >= value
}

/** Degraded after a failed write until LevelDB is reopened and a synced probe succeeds. */
class StoreHealth {
  private failure: Error | undefined
  private recovering = false
  private stopped = false
  /** Told once when writes start failing and once when they work again. */
  onChange?: (failure: Error | undefined) => void

  constructor (private readonly recover: () => Promise<void>) {}

  get degraded (): Error | undefined { return this.failure }

  check (): void {
    if (this.failure !== undefined) throw this.failure
  }

  failed (err: unknown): Error {
    const failure = classifyWriteError(err)
    const first = this.failure === undefined
    this.failure = failure
    if (first) this.onChange?.(failure)
    if (!this.recovering) void this.recoverLoop()
    return failure
  }

  /** The store is closing: stop trying to recover. */
  stop (): void { this.stopped = true }

  private async recoverLoop (): Promise<void> {
    this.recovering = true
    for (let delay = 250; this.failure !== undefined && !this.stopped; delay = Math.min(2000, delay * 2)) {
      await new Promise(resolve => setTimeout(resolve, delay).unref())
      if (this.stopped) break
      try {
        await this.recover()
        this.failure = undefined
        this.onChange?.(undefined)
      } catch (err) {
        this.failure = classifyWriteError(err)
      }
    }
    this.recovering = false
  }
}

export class Store {
  private readonly durable: GroupWriter
  private readonly lazy: GroupWriter
  readonly health: StoreHealth
  private closed = false
  private journal!: Journal
  /**
   * The "unfolded" keys (see the header), oldest fold first: the last one
   * takes new own writes; those before it are being written to LevelDB and
   * each goes as a whole once it landed (no per-key bookkeeping). A key may
   * be in several; the newest fold has its newest value.
   */
  private folds: Fold[] = [newFold()]
  private foldTimer: NodeJS.Timeout | undefined
  private entryWritesQueued = 0
  private lastEntryWriteQueuedAt = 0
  /** meta/snapshot names a snapshot taken while running: the next entry write deletes it in its own batch. */
  private snapshotLive = false
  /** The snapshot file being written, if any (one at a time). */
  private snapshotWrite: Promise<unknown> = Promise.resolve()

  private constructor (private readonly db: Level<string, string>, private readonly dir: string) {
    this.health = new StoreHealth(async () => { await this.reopen() })
    this.durable = new GroupWriter(async ops => { await this.commitOwn(ops) }, this.health)
    this.lazy = new GroupWriter(async lists => { await writeBatch(this.db, lists, false) }, this.health)
  }

  /** The durable writer's commit: one fdatasync'd journal record; its fold follows later (foldSoon). */
  private async commitOwn (lists: Array<Iterable<BatchOp>>): Promise<void> {
    const ops: BatchOp[] = []
    const record: JournalRecord = []
    for (const list of lists) {
      for (const op of list) {
        ops.push(op)
        record.push(op.key, op.type === 'put' ? op.value : null)
      }
    }
    const at = await this.journal.append(record)
    const fold = this.pendingFold
    for (const op of ops) {
      if (op.type === 'put' && op.once === true) fold.once.push(op)
      else keepLargest(fold.ops, op)
    }
    fold.files.push(at.seq)
    fold.upTo = at
    this.foldSoon()
  }

  /** The fold that takes new own writes. */
  private get pendingFold (): Fold { return this.folds[this.folds.length - 1] }

  private foldSoon (): void {
    if (foldSize(this.pendingFold) >= FOLD_KEYS) this.fold()
    else this.foldTimer ??= setTimeout(() => { this.fold() }, FOLD_DELAY_MS).unref()
  }

  /**
   * Hand every waiting own write to the unsynced writer, one op per key.
   * Holding them back never puts an older value over a newer one: the keys
   * of own writes are this replica's alone (its counts, slot entries,
   * idempotency records, meta values), or, for items, written by anyone
   * but always with the same value 1.
   */
  private fold (): void {
    clearTimeout(this.foldTimer)
    this.foldTimer = undefined
    const fold = this.pendingFold
    if (fold.files.length === 0) return
    this.folds.push(newFold())
    // One batch, not slices of it written one after the other: sliced, the
    // ops of a busy node stayed unfolded (and in memory) longer, and RSS
    // while loading 1M items went from ~300 to ~500 MB.
    // With the ops, atomically: how far the journal is folded, so that a start
    // after kill -9 refolds only the records after it (1M names: a whole
    // 16 MB file of long-folded records took ~0.4 s). Folds land in order.
    const reached: BatchOp[] = fold.upTo === undefined ? [] : [{ type: 'put', key: FOLDED_KEY, value: formatPosition(fold.upTo) }]
    this.lazy.writeBulk([...fold.once, ...fold.ops.values(), ...reached]).then(() => {
      this.folds = this.folds.filter(f => f !== fold)
      for (const file of fold.files) this.journal.folded(file)
    }, () => {
      // The store is degraded now; recovery folds the records again (recoverJournal).
    })
  }

  /** Forget the waiting folds: the journal is being folded from its files (open, recovery). */
  private dropPendingFolds (): void {
    clearTimeout(this.foldTimer)
    this.foldTimer = undefined
    this.folds = [newFold()]
  }

  /**
   * Make every write handed to LevelDB so far durable (before journal files
   * that hold them go). A synced put alone would not do: writes in the log of
   * a memtable being flushed are durable only once that flush lands. A
   * compaction of a range no key falls in flushes the memtable and waits for
   * it, and compacts nothing else.
   */
  private async syncDb (): Promise<void> {
    if (this.closed) throw new StorageError('the data dir is closed')
    await this.db.put(JOURNAL_KEY, String(Date.now()))
    // `level` is classic-level in Node; its type (shared with the browser build) lacks compactRange.
    await (this.db as unknown as { compactRange: (start: string, end: string) => Promise<void> }).compactRange('\u0000', '\u0001')
  }

  /**
   * Fold journal records into their keys, oldest first, in one synced batch.
   * Runs at open and during recovery, when no other write can be in flight.
   */
  private async foldRecords (records: JournalRecord[]): Promise<void> {
    if (records.length === 0) return
    const ops = new Map<string, BatchOp>()
    for (const record of records) {
      for (let i = 0; i < record.length; i += 2) {
        const key = record[i] as string
        const v = record[i + 1]
        keepLargest(ops, v === null ? { type: 'del', key } : { type: 'put', key, value: v, grows: key.startsWith('e/') ? storedValue(key, v) : undefined })
      }
    }
    await writeBatch(this.db, [ops.values()], true)
  }

  /**
   * Journal records a data dir of the previous layout left in LevelDB
   * (w/<seq>, before the journal file): fold them, then delete them.
   */
  private async foldLegacyJournal (): Promise<void> {
    for await (const [key, value] of this.db.iterator({ gt: 'w/', lt: 'w0' })) {
      await this.foldRecords([JSON.parse(value) as JournalRecord])
      await this.db.del(key, { sync: true })
    }
  }

  /** Open the journal; fold and delete what a killed process left in it. */
  private async openJournal (): Promise<void> {
    await this.foldLegacyJournal()
    const foldedUpTo = parsePosition(await this.db.get(FOLDED_KEY))
    const { journal, records, replayed } = Journal.open(join(this.dir, 'journal'), async () => { await this.syncDb() }, foldedUpTo)
    this.journal = journal
    await this.foldRecords(records)
    Journal.discard(replayed)
    // Before any new record: the new files may reuse old numbers (none left: 0 again).
    if (foldedUpTo !== undefined) await this.db.del(FOLDED_KEY, { sync: true })
    this.dropPendingFolds()
  }

  /** After a failed write: fold every record still in the journal again, then continue in a new file. */
  private async recoverJournal (): Promise<void> {
    await this.foldLegacyJournal()
    await this.foldRecords(this.journal.records())
    Journal.discard(this.journal.restart())
    this.dropPendingFolds()
  }

  /**
   * A key's value, unfolded journal writes included. For keys that are not
   * entries (records, meta values): a fold keys those by their store key,
   * entries possibly by a coalescing key (PlacedEntry.coalesce).
   */
  private async get (key: string): Promise<string | undefined> {
    let op: BatchOp | undefined
    for (let i = this.folds.length - 1; i >= 0 && op === undefined; i--) op = this.folds[i].ops.get(key)
    if (op !== undefined) return op.type === 'put' ? op.value : undefined
    return await this.db.get(key)
  }

  /** Called after each synced batch with its number of callers and duration (metrics). */
  set onBatch (fn: (size: number, ms: number) => void) { this.durable.onBatch = fn }

  /** Open (and, once, migrate) the data dir; `place` says where migrated entries go (without it, no migration runs: tests of fresh dirs). */
  static async open (dir: string, place?: Placement): Promise<Store> {
    try {
      makeDir(dir)
    } catch (err: any) {
      throw new Error(`cannot create data dir ${dir}: ${String(err?.code ?? err?.message)}`)
    }
    const db = new Level<string, string>(dir, { writeBufferSize: WRITE_BUFFER_BYTES })
    // A snapshot file a killed process was writing: nobody reads it, and on a
    // full disk its space is what LevelDB needs to open. Removed only once
    // the open failed for something else than another countd holding the dir.
    const staleSnapshot = join(dir, 'snapshot.bin.tmp')
    for (let attempt = 0; ; attempt++) {
      try {
        await db.open()
        break
      } catch (err: any) {
        if (err?.cause?.code === 'LEVEL_LOCKED') throw new DataDirLockedError(dir)
        if (attempt === 0 && existsSync(staleSnapshot)) {
          rmSync(staleSnapshot, { force: true })
          continue
        }
        throw new Error(`cannot open data dir ${dir}: ${err?.cause?.message ?? err?.message}`)
      }
    }
    rmSync(staleSnapshot, { force: true }) // the dir is ours now (LevelDB's lock)
    const store = new Store(db, dir)
    try {
      const layout = await db.get(LAYOUT_KEY)
      if (place !== undefined && layout === undefined) await store.migrateV1(place)
      await store.openJournal()
      // After the journal's fold: a record a killed older version left is in the old layout too.
      if (place !== undefined && layout !== LAYOUT) await store.migrateToIdentities(place)
    } catch (err) {
      await db.close().catch(() => {})
      throw err
    }
    return store
  }

  /**
   * Version 1 data dirs kept counters as c/<name>/<replica> -> count. Move
   * them to e/c/<leaf>/<name>/<replica> in batches (each batch adds the new
   * keys and deletes the old ones atomically, so a crash midway resumes).
   */
  private async migrateV1 (place: Placement): Promise<void> {
    while (true) {
      const chunk = await this.db.iterator({ gt: 'c/', lt: 'c0', limit: 20000 }).all()
      if (chunk.length === 0) break
      const ops: BatchOp[] = []
      for (const [key, value] of chunk) {
        const slash = key.lastIndexOf('/')
        const e: Entry = { ds: 'c', key: key.slice(2, slash), sub: key.slice(slash + 1), value: BigInt(value) }
        ops.push(entryOp(place(e)), { type: 'del', key })
      }
      await writeBatch(this.db, [ops], true)
    }
    await this.db.put(LAYOUT_KEY, '2', { sync: true })
  }

  /**
   * Version 2 kept every entry under its key and sub. Move the entries of
   * datasets stored by identity (items) under it, in batches that put the
   * new key and delete the old one atomically (a crash midway resumes: moved
   * keys are not read again).
   */
  private async migrateToIdentities (place: Placement): Promise<void> {
    const started = performance.now()
    let moved = 0
    for (let after = 'e/'; ;) {
      const chunk = await this.db.iterator({ gt: after, lt: 'e0', limit: 20000 }).all()
      if (chunk.length === 0) break
      after = chunk[chunk.length - 1][0]
      const ops: BatchOp[] = []
      for (const [key, value] of chunk) {
        const e = parseEntryKey(key, value)
        const placed = place(e)
        if (placed.identity === undefined || isIdentityKey(key)) continue
        ops.push(entryOp(placed), { type: 'del', key })
        moved++
      }
      if (ops.length > 0) await writeBatch(this.db, [ops], true)
    }
    await this.db.put(LAYOUT_KEY, LAYOUT, { sync: true })
    if (moved > 0) this.migrated = { entries: moved, ms: performance.now() - started }
  }

  /** What open() moved to this version's layout (for the daemon's log). */
  migrated?: { entries: number, ms: number }

  private async reopen (): Promise<void> {
    if (this.closed) throw new StorageError('the data dir is closed')
    // Journal appends already under way finish (or fail) before the journal is read and started over.
    await this.durable.settled()
    await this.db.close()
    await this.db.open()
    // A synced probe: the disk takes writes again.
    await this.db.put('meta/probe', String(Date.now()), { sync: true })
    await this.recoverJournal()
    await this.journal.probe()
  }

  // ---- entries ----

  /** Every stored entry, in key order, in chunks. */
  async * entries (): AsyncGenerator<PlacedEntry[]> {
    await this.writesSettled() // acknowledged writes still waiting for their fold, or being folded
    for await (const chunk of this.chunksOf({ gt: 'e/', lt: 'e0' })) yield chunk.map(([key, value]) => parseEntryKey(key, value))
  }

  /** The [key, value] pairs of one key range, in key order, in chunks. */
  private async * chunksOf (range: { gt?: string, gte?: string, lt: string }): AsyncGenerator<Array<[string, string]>> {
    const it = this.db.iterator(range)
    // The next chunk is read (in libuv's pool) while the caller works on this one.
    let next = it.nextv(10000)
    try {
      while (true) {
        const chunk = await next
        if (chunk.length === 0) break // fewer than asked is not the end; [] is
        next = it.nextv(10000)
        yield chunk
      }
    } finally {
      await next.catch(() => {})
      await it.close()
    }
  }

  /**
   * Entries of dataset `tag` under digest-tree node prefixes (hex, one digit
   * per level; '' = all). Adjacent prefixes are read as one range.
   */
  async entriesUnder (tag: string, prefixes: string[], storedHint = Infinity): Promise<PlacedEntry[]> {
    const found = new Map<string, string>()
    const ranges = mergeRanges(prefixes).map(([from, to]): [string, string] => [`e/${tag}/${from}`, `e/${tag}/${to}`])
    const overlay = this.unfoldedEntries(key => inRanges(key, ranges))
    if (ranges.length * SEEKS_PER_SCANNED_ENTRY > storedHint) {
      // More ranges than a scan costs: read the span in bulk and filter.
      await this.scanRanges(ranges, found)
    } else {
      // A catch-up that differs in 1 % of a million entries asks for ~10,000
      // scattered leaves: an iterator per range cost ~0.5 ms each (5.9 s), so
      // a few iterators seek from range to range instead, in parallel.
      const slice = Math.ceil(ranges.length / RANGE_READERS)
      await Promise.all(Array.from({ length: Math.min(RANGE_READERS, ranges.length) }, async (_, i) => {
        await this.readRanges(ranges.slice(i * slice, (i + 1) * slice), found)
      }))
    }
    return withOverlay(found, overlay)
  }

  /**
   * Acknowledged entry writes not folded yet, of the keys `wanted` accepts.
   * Take them BEFORE reading LevelDB: a fold that lands during the read
   * leaves `folds`, and a read that had already passed its key would miss
   * it (values only grow, so an older overlay value never hides a newer
   * stored one: see withOverlay).
   */
  private unfoldedEntries (wanted: (key: string) => boolean): UnfoldedEntry[] {
    const out: UnfoldedEntry[] = []
    for (const fold of this.folds) {
      for (const op of fold.once) if (op.type === 'put' && op.grows !== undefined && wanted(op.key)) out.push({ key: op.key, value: op.value, grows: op.grows })
      // By op.key: the map's key may be a coalescing key (PlacedEntry.coalesce).
      for (const op of fold.ops.values()) if (op.type === 'put' && op.grows !== undefined && wanted(op.key)) out.push({ key: op.key, value: op.value, grows: op.grows })
    }
    return out
  }

  /**
   * Entries of a dataset stored by identity, by leaf and identity; those not
   * stored are left out. Exact keys: a LevelDB get each, in RANGE_READERS
   * parallel lists, not a range per leaf.
   */
  async entriesByIdentity (tag: string, refs: Array<{ leaf: number, identity: string }>): Promise<PlacedEntry[]> {
    const keys = refs.map(r => identityKey(tag, r.leaf, r.identity))
    const wanted = this.folds.length > 0 ? new Set(keys) : undefined
    const overlay = wanted === undefined ? [] : this.unfoldedEntries(key => wanted.has(key))
    const slice = Math.ceil(keys.length / RANGE_READERS)
    const values = (await Promise.all(Array.from({ length: Math.min(RANGE_READERS, keys.length) }, async (_, i) => await this.db.getMany(keys.slice(i * slice, (i + 1) * slice))))).flat()
    const found = new Map<string, string>()
    keys.forEach((key, i) => { if (values[i] !== undefined) found.set(key, values[i] as string) })
    return withOverlay(found, overlay)
  }

  /** Every key in the sorted, disjoint [gte, lt) ranges, read by one pass over their whole span. */
  private async scanRanges (ranges: Array<[string, string]>, into: Map<string, string>): Promise<void> {
    if (ranges.length === 0) return
    let r = 0
    for await (const chunk of this.chunksOf({ gte: ranges[0][0], lt: ranges[ranges.length - 1][1] })) {
      for (const [key, value] of chunk) {
        while (key >= ranges[r][1]) r++
        if (key >= ranges[r][0]) into.set(key, value)
      }
    }
  }

  /** Every key in the sorted, disjoint [gte, lt) ranges, read with one iterator that seeks between them. */
  private async readRanges (ranges: Array<[string, string]>, into: Map<string, string>): Promise<void> {
    if (ranges.length === 0) return
    const it = this.db.iterator({ gte: ranges[0][0], lt: ranges[ranges.length - 1][1] })
    try {
      for (const [gte, lt] of ranges) {
        it.seek(gte)
        // Most ranges hold a few entries: read a few, then more while the range goes on.
        // (nextv may return fewer than asked before the end: only [] means the end.)
        for (let n = 16; ; n = Math.min(n * 4, 4096)) {
          const chunk = await it.nextv(n)
          let past = chunk.length === 0
          for (const [key, value] of chunk) {
            if (key >= lt) { past = true; break }
            into.set(key, value)
          }
          if (past) break
        }
      }
    } finally {
      await it.close()
    }
  }

  /** Persist with fsync (plus idempotency records and meta values, atomically); resolves once durable. */
  async writeDurable (entries: PlacedEntry[], records: Array<[string, IdempotencyRecord]> = [], meta: Array<[string, string]> = []): Promise<void> {
    const ops = entries.map(entryOp)
    const dropsSnapshot = entries.length > 0 && this.noteEntryWrite(ops)
    for (const [key, r] of records) ops.push({ type: 'put', key: idempotencyKey(key), value: JSON.stringify(r) })
    for (const [name, value] of meta) ops.push({ type: 'put', key: `meta/${name}`, value })
    await this.durable.writeBulk(ops)
    if (dropsSnapshot) this.snapshotLive = false
  }

  /**
   * Persist without fsync (state learned from peers). `onWritten` runs
   * synchronously once LevelDB has the batch, so a caller that makes the
   * entries visible there never shows a value that a killed process forgets.
   */
  async writeLazy (entries: PlacedEntry[], onWritten?: () => void): Promise<void> {
    const ops = entries.map(entryOp)
    const dropsSnapshot = entries.length > 0 && this.noteEntryWrite(ops)
    await this.lazy.write(ops, onWritten)
    if (dropsSnapshot) this.snapshotLive = false
  }

  /**
   * Count an entry write. While meta/snapshot is valid, every entry write
   * deletes it in its own batch (journal record or LevelDB batch), until one
   * such write has landed (the callers clear snapshotLive then; a write that
   * failed leaves it for the next), so no start takes a snapshot that lacks a
   * write the data dir has. Returns whether `ops` now carries the delete.
   */
  private noteEntryWrite (ops: BatchOp[]): boolean {
    this.entryWritesQueued++
    this.lastEntryWriteQueuedAt = performance.now()
    if (!this.snapshotLive) return false
    ops.push({ type: 'del', key: SNAPSHOT_KEY })
    return true
  }

  /**
   * After `quietMs` without entry writes, with every own write folded: let
   * the journal's file go (Journal.checkpoint), so that a kill -9 now costs
   * a start no replay. Called on a timer; cheap when there is nothing to do.
   */
  checkpointWhenQuiet (quietMs: number): void {
    if (this.closed || performance.now() - this.lastEntryWriteQueuedAt < quietMs || !this.idle || this.folds.length > 1 || foldSize(this.pendingFold) > 0) return
    this.journal.checkpoint(CHECKPOINT_MIN_BYTES)
  }

  /** No write queued or in flight. */
  get idle (): boolean { return this.durable.idle && this.lazy.idle }

  /** Entry writes queued so far: a snapshot is exact only while this has not moved. */
  get entryWrites (): number { return this.entryWritesQueued }

  /** When the last entry write was queued (performance.now()). */
  get lastEntryWriteAt (): number { return this.lastEntryWriteQueuedAt }

  // ---- idempotency records ----

  async idempotencyRecord (key: string): Promise<IdempotencyRecord | undefined> {
    const raw = await this.get(idempotencyKey(key))
    return raw === undefined ? undefined : JSON.parse(raw)
  }

  /** Delete records that expired before `now`; returns how many. */
  async sweepIdempotency (now: number): Promise<number> {
    const dead: BatchOp[] = []
    for await (const [key, value] of this.db.iterator({ gt: 'i/', lt: 'i0' })) {
      try {
        if ((JSON.parse(value) as IdempotencyRecord).expiresAt <= now) dead.push({ type: 'del', key })
      } catch {
        dead.push({ type: 'del', key })
      }
    }
    if (dead.length > 0) await this.lazy.write(dead)
    return dead.length
  }

  // ---- membership ----

  async members (): Promise<MemberRecord[]> {
    const out: MemberRecord[] = []
    for await (const [, value] of this.db.iterator({ gt: 'm/', lt: 'm0' })) {
      try { out.push(JSON.parse(value)) } catch {}
    }
    return out
  }

  saveMember (m: MemberRecord): void {
    void this.lazy.write([{ type: 'put', key: memberKey(m.id), value: JSON.stringify(m) }]).catch(() => {})
  }

  deleteMember (id: string): void {
    void this.lazy.write([{ type: 'del', key: memberKey(id) }]).catch(() => {})
  }

  // ---- small values ----

  async flag (name: string): Promise<boolean> {
    return await this.get(`meta/${name}`) === '1'
  }

  async setFlag (name: string): Promise<void> {
    await this.durable.writeBulk([{ type: 'put', key: `meta/${name}`, value: '1' }])
  }

  async meta (name: string): Promise<string | undefined> {
    return await this.get(`meta/${name}`)
  }

  // ---- snapshot of the in-memory state ----
  //
  // The replica's in-memory state is written to <dir>/snapshot.bin (fsync'd,
  // then renamed into place) at a clean stop, and while running when the node
  // has been quiet a moment (saveQuietSnapshot): then a kill -9 that follows
  // restarts as fast as a clean stop. meta/snapshot records the file's
  // checksum. The first entry write after it deletes that record in the same
  // batch (noteEntryWrite: in the journal record or the LevelDB batch that
  // carries the write), so a start takes the snapshot only if the record is
  // there and matches the file, and then nothing written since is missing
  // from it. Anything else (a crash after writes, a damaged file) rebuilds
  // from the entries.

  /** Write the snapshot `bytes()` makes, unless the one on disk is of this state; call with no writes to follow (the store closes next). */
  async saveSnapshot (bytes: () => Chunk[]): Promise<void> {
    await this.snapshotWrite
    await this.writesSettled()
    if (this.snapshotLive) return // the one on disk is of this state already
    const snap = bytes()
    const record = await writeFileSynced(join(this.dir, 'snapshot.bin'), snap)
    await this.db.put(SNAPSHOT_KEY, record, { sync: true })
  }

  /**
   * Write a snapshot taken while running, when `entryWrites` was `takenAt`.
   * It counts only if no entry was written meanwhile; resolves with whether
   * it does. (Its record is written unsynced: after a machine crash the
   * start may rebuild from the entries, never take a wrong snapshot.)
   */
  async saveQuietSnapshot (bytes: Chunk[], takenAt: number): Promise<boolean> {
    const write = this.snapshotWrite.then(async () => {
      if (this.closed || this.entryWrites !== takenAt) return false
      const record = await writeFileSynced(join(this.dir, 'snapshot.bin'), bytes)
      if (this.closed || this.entryWrites !== takenAt || this.health.degraded !== undefined) return false
      this.snapshotLive = true
      await this.lazy.write([{ type: 'put', key: SNAPSHOT_KEY, value: record }])
      return true
    })
    this.snapshotWrite = write.catch(() => false)
    return await write
  }

  /**
   * The last snapshot, if no entry was written after it (then it stays: the
   * next entry write drops it, and until then a crash starts from it again).
   */
  async takeSnapshot (): Promise<Uint8Array | undefined> {
    const record = await this.db.get(SNAPSHOT_KEY)
    if (record === undefined) return undefined
    try {
      const bytes = readFileSync(join(this.dir, 'snapshot.bin'))
      if (record === snapshotRecord([bytes])) {
        this.snapshotLive = true
        return bytes
      }
    } catch {}
    await this.dropSnapshot()
    return undefined
  }

  /** Forget the snapshot (it does not match, or this version cannot read it). */
  async dropSnapshot (): Promise<void> {
    this.snapshotLive = false
    await this.db.del(SNAPSHOT_KEY, { sync: true })
    rmSync(join(this.dir, 'snapshot.bin'), { force: true })
  }

  // ---- identity ----

  async identity (): Promise<Uint8Array | undefined> {
    const hex = await this.db.get(IDENTITY_KEY)
    return hex === undefined ? undefined : Uint8Array.from(Buffer.from(hex, 'hex'))
  }

  async saveIdentity (key: Uint8Array): Promise<void> {
    await this.db.put(IDENTITY_KEY, Buffer.from(key).toString('hex'), { sync: true })
  }

  /** Until no write is queued or in flight (folds included). */
  private async writesSettled (): Promise<void> {
    while (!this.durable.idle || !this.lazy.idle || this.pendingFold.files.length > 0) {
      this.fold()
      await new Promise(resolve => setTimeout(resolve, 1))
    }
  }

  /**
   * Wait for queued writes and close the database. With every journal record
   * folded and synced into LevelDB, the journal files go (a clean stop leaves
   * none to replay).
   */
  async close (): Promise<void> {
    await this.snapshotWrite
    await this.writesSettled()
    if (this.health.degraded === undefined && this.journal.allFolded) {
      try {
        await this.syncDb()
        await this.journal.discardAll()
      } catch {
        await this.journal.close() // kept: the next open replays them
      }
    } else {
      await this.journal.close()
    }
    this.closed = true
    this.health.stop()
    await this.db.close()
  }
}

/**
 * One LevelDB batch. Built as a chained batch: abstract-level's array form
 * clones and re-validates every operation in JavaScript (5,000 keys: 88 ms
 * against 23 ms chained, measured here).
 */
async function writeBatch (db: Level<string, string>, lists: Array<Iterable<BatchOp>>, sync: boolean): Promise<void> {
  const batch = db.batch()
  for (const ops of lists) {
    for (const op of ops) {
      if (op.type === 'put') batch.put(op.key, op.value)
      else batch.del(op.key)
    }
  }
  await batch.write({ sync })
}

/** What meta/snapshot holds for a snapshot file of these chunks: its checksum and length. */
function snapshotRecord (chunks: Uint8Array[]): string {
  const sum = new FileSum()
  for (const c of chunks) sum.add(c)
  return sum.record
}

/** The checksum and length of a file's bytes, chunk by chunk, as meta/snapshot holds them. */
class FileSum {
  private crc = 0
  private length = 0

  add (bytes: Uint8Array): void {
    // Node 20's crc32 answers 0, not the running value, for an empty view of an empty buffer.
    if (bytes.byteLength === 0) return
    this.crc = crc32(bytes, this.crc)
    this.length += bytes.byteLength
  }

  get record (): string { return `${this.crc}:${this.length}` }
}

/**
 * Write `chunks` to `file` through `file.tmp`, fsync'd, then renamed into
 * place. Async writes of at most 4 MiB, so a running node keeps serving.
 * Resolves with the file's snapshotRecord (checksum and length), taken from
 * the bytes as written.
 */
async function writeFileSynced (file: string, chunks: Chunk[]): Promise<string> {
  const tmp = `${file}.tmp`
  const fh = await open(tmp, 'w')
  const sum = new FileSum()
  try {
    try {
      for (const chunk of chunks) {
        // A lazy chunk exists only while it is written (chunkBytes).
        const bytes = chunkBytes(chunk)
        for (let off = 0; off < bytes.length;) off += (await fh.write(bytes, off, Math.min(bytes.length - off, 1 << 22))).bytesWritten
        sum.add(bytes)
      }
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    // A half-written file (a full disk) must not keep the space: the next
    // start, with the disk as full as before, could not open LevelDB.
    rmSync(tmp, { force: true })
    throw err
  }
  renameSync(tmp, file)
  return sum.record
}

/**
 * mkdir -p, one level at a time: Node 20's recursive mkdirSync spins forever
 * under /proc (a data dir of /proc/x hung `countd start` at 100 % CPU), and
 * a level that cannot be made should fail with its own error.
 */
export function makeDir (dir: string): void {
  const missing: string[] = []
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.push(d)
    if (dirname(d) === d) break
  }
  for (const d of missing.reverse()) mkdirSync(d)
}

/** Whether `key` falls in one of the sorted, disjoint [gte, lt) ranges (binary search: a catch-up may name 10,000s). */
function inRanges (key: string, ranges: Array<[string, string]>): boolean {
  let lo = 0
  let hi = ranges.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ranges[mid][1] <= key) lo = mid + 1
    else hi = mid
  }
  return lo < ranges.length && key >= ranges[lo][0]
}

/** Sorted hex prefixes -> [from, to) key ranges, adjacent ones merged ('' = everything). */
export function mergeRanges (prefixes: string[]): Array<[string, string]> {
  const ranges: Array<[string, string]> = []
  for (const p of [...prefixes].sort()) {
    const to = p === '' ? '\uffff' : nextPrefix(p)
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last[1] === p) last[1] = to
    else ranges.push([p, to])
  }
  return ranges
}

/** The smallest hex string of the same length greater than every string starting with `p`. */
function nextPrefix (p: string): string {
  const n = parseInt(p, 16) + 1
  return n >= 16 ** p.length ? '\uffff' : n.toString(16).padStart(p.length, '0')
}
