// LevelDB persistence for one replica.
//
// Key layout (utf8):
//   c/<name>/<replicaId>  -> decimal count      (one G-Counter entry)
//   m/<replicaId>         -> JSON MemberRecord  (membership)
//   meta/identity         -> hex of the libp2p private key (protobuf)
//   meta/joined           -> '1' once another member has synced with us
//   i/<idempotency key>   -> JSON IdempotencyRecord (answer of a keyed increment)
//
// All writes go through a group writer: callers that arrive while a batch is
// being written join the next batch, so N concurrent writers cost one LevelDB
// write (and, for own increments, one fsync) instead of N. Own increments are
// written with sync before they are acknowledged. Entries learned from peers
// and membership are written without fsync: once LevelDB returns they are in
// the OS and survive a killed process; after a machine crash they are simply
// fetched again from the cluster.
import { mkdirSync } from 'node:fs'
import { Level } from 'level'
import { DataDirLockedError } from '../errors.js'
export { DataDirLockedError }

export interface StoredEntry {
  name: string
  replica: string
  count: bigint
}

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

type BatchOp = { type: 'put', key: string, value: string, count?: bigint } | { type: 'del', key: string }

interface Waiter {
  /** Runs synchronously right after the batch is written, before the next one starts. */
  onWritten?: () => void
  resolve: () => void
  reject: (err: Error) => void
}

const counterKey = (name: string, replica: string): string => `c/${name}/${replica}`
const memberKey = (id: string): string => `m/${id}`
const IDENTITY_KEY = 'meta/identity'
const idempotencyKey = (key: string): string => `i/${key}`

function entryOp (e: StoredEntry): BatchOp {
  return { type: 'put', key: counterKey(e.name, e.replica), value: e.count.toString(), count: e.count }
}

/**
 * Group commit: one batch in flight at a time; everything queued meanwhile
 * becomes the next batch. (One at a time measured fastest for synced
 * batches here, 50 clients: ~9k inc/s vs ~7k with two and ~6k with four in
 * flight.) Counter keys never go backwards: a count is only queued if it is
 * larger than what is queued or being written for that key.
 */
class GroupWriter {
  private queue = new Map<string, BatchOp>()
  private waiters: Waiter[] = []
  private inFlight = new Map<string, BatchOp>()
  private writing = false
  /**
   * A failed LevelDB write fails every later write too: a write skipped
   * because a larger count was in the failed batch must not report success.
   */
  private failed: Error | undefined
  onBatch?: (size: number, ms: number) => void

  constructor (private readonly db: Level<string, string>, private readonly sync: boolean) {}

  async write (ops: BatchOp[], onWritten?: () => void): Promise<void> {
    if (this.failed !== undefined) throw this.failed
    for (const op of ops) {
      if (op.type === 'put' && op.count !== undefined && !this.grows(op.key, op.count)) continue
      this.queue.set(op.key, op)
    }
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ onWritten, resolve, reject }))
    if (!this.writing) void this.run()
    return await done
  }

  get idle (): boolean { return !this.writing && this.waiters.length === 0 }

  private grows (key: string, count: bigint): boolean {
    for (const m of [this.queue, this.inFlight]) {
      const prev = m.get(key)
      if (prev?.type === 'put' && prev.count !== undefined && prev.count >= count) return false
    }
    return true
  }

  private async run (): Promise<void> {
    this.writing = true
    try {
      while (this.waiters.length > 0) {
        const waiters = this.waiters
        this.inFlight = this.queue
        this.queue = new Map()
        this.waiters = []
        const started = performance.now()
        try {
          if (this.inFlight.size > 0) await this.db.batch([...this.inFlight.values()], { sync: this.sync })
        } catch (err: any) {
          this.failed = err
          this.inFlight = new Map()
          for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(err)
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

export class Store {
  private readonly durable: GroupWriter
  private readonly lazy: GroupWriter

  private constructor (private readonly db: Level<string, string>) {
    this.durable = new GroupWriter(db, true)
    this.lazy = new GroupWriter(db, false)
  }

  /** Called after each synced batch with its number of callers and duration (metrics). */
  set onBatch (fn: (size: number, ms: number) => void) { this.durable.onBatch = fn }

  static async open (dir: string): Promise<Store> {
    mkdirSync(dir, { recursive: true })
    const db = new Level<string, string>(dir)
    try {
      await db.open()
    } catch (err: any) {
      if (err?.cause?.code === 'LEVEL_LOCKED') throw new DataDirLockedError(dir)
      throw new Error(`cannot open data dir ${dir}: ${err?.cause?.message ?? err?.message}`)
    }
    return new Store(db)
  }

  // ---- counters ----

  /** Every stored counter entry, in key order, in chunks. */
  async * entries (): AsyncGenerator<StoredEntry[]> {
    const it = this.db.iterator({ gt: 'c/', lt: 'c0' })
    try {
      while (true) {
        const chunk = await it.nextv(10000)
        if (chunk.length === 0) break
        yield chunk.map(([key, value]) => {
          const slash = key.lastIndexOf('/')
          return { name: key.slice(2, slash), replica: key.slice(slash + 1), count: BigInt(value) }
        })
      }
    } finally {
      await it.close()
    }
  }

  /** Persist with fsync (plus idempotency records, atomically); resolves once durable. */
  async writeDurable (entries: StoredEntry[], records: Array<[string, IdempotencyRecord]> = []): Promise<void> {
    const ops = entries.map(entryOp)
    for (const [key, r] of records) ops.push({ type: 'put', key: idempotencyKey(key), value: JSON.stringify(r) })
    await this.durable.write(ops)
  }

  // ---- idempotency records ----

  async idempotencyRecord (key: string): Promise<IdempotencyRecord | undefined> {
    const raw = await this.db.get(idempotencyKey(key))
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

  /**
   * Persist without fsync (state learned from peers). `onWritten` runs
   * synchronously once LevelDB has the batch, so a caller that makes the
   * entries visible there never shows a count that a killed process forgets.
   */
  async writeLazy (entries: StoredEntry[], onWritten?: () => void): Promise<void> {
    await this.lazy.write(entries.map(entryOp), onWritten)
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

  // ---- flags ----

  async flag (name: string): Promise<boolean> {
    return await this.db.get(`meta/${name}`) === '1'
  }

  async setFlag (name: string): Promise<void> {
    await this.db.put(`meta/${name}`, '1', { sync: true })
  }

  // ---- identity ----

  async identity (): Promise<Uint8Array | undefined> {
    const hex = await this.db.get(IDENTITY_KEY)
    return hex === undefined ? undefined : Uint8Array.from(Buffer.from(hex, 'hex'))
  }

  async saveIdentity (key: Uint8Array): Promise<void> {
    await this.db.put(IDENTITY_KEY, Buffer.from(key).toString('hex'), { sync: true })
  }

  /** Wait for queued writes and close the database. */
  async close (): Promise<void> {
    while (!this.durable.idle || !this.lazy.idle) await new Promise(resolve => setTimeout(resolve, 1))
    await this.db.close()
  }
}
