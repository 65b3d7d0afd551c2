// LevelDB persistence for one replica.
//
// Key layout (utf8):
//   c/<name>/<replicaId>  -> decimal count      (one G-Counter entry)
//   m/<replicaId>         -> JSON MemberRecord  (membership)
//   meta/identity         -> hex of the libp2p private key (protobuf)
//
// Own increments go through `writeDurable`: a group commit where every
// caller waiting while an fsync'd batch is in flight joins the next batch, so
// N concurrent increments cost ~1 fsync instead of N. Entries learned from
// peers go through `writeLazy` (unsynced, flushed every few ms): they can
// always be fetched again from the cluster, so losing the tail is harmless.
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

type BatchOp = { type: 'put', key: string, value: string } | { type: 'del', key: string }


const counterKey = (name: string, replica: string): string => `c/${name}/${replica}`
const memberKey = (id: string): string => `m/${id}`
const IDENTITY_KEY = 'meta/identity'
/** How long unsynced writes may wait before they are flushed. */
const LAZY_FLUSH_MS = 50
/** Synced batches that may be waiting on LevelDB at once (see flushDurable). */
const MAX_SYNCED_BATCHES_IN_FLIGHT = 1

export class Store {
  private durableQueue = new Map<string, BatchOp>()
  private durableWaiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  private inFlight = 0
  private lazyQueue = new Map<string, BatchOp>()
  private lazyTimer: NodeJS.Timeout | undefined
  private lazyFlush: Promise<void> = Promise.resolve()
  /** Sizes of the last synced batches, for metrics. */
  onBatch?: (size: number, fsyncMs: number) => void

  private constructor (private readonly db: Level<string, string>) {}

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

  /** Every stored counter entry, in key order. */
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

  /** Persist with fsync; resolves once the entries are durable (group commit). */
  async writeDurable (entries: StoredEntry[]): Promise<void> {
    for (const e of entries) this.enqueue(this.durableQueue, e)
    const done = new Promise<void>((resolve, reject) => this.durableWaiters.push({ resolve, reject }))
    if (this.inFlight < MAX_SYNCED_BATCHES_IN_FLIGHT) void this.flushDurable()
    return await done
  }

  /** Persist without waiting or syncing (state learned from peers). */
  writeLazy (entries: StoredEntry[]): void {
    for (const e of entries) this.enqueue(this.lazyQueue, e)
    this.scheduleLazy()
  }

  private enqueue (queue: Map<string, BatchOp>, e: StoredEntry): void {
    const key = counterKey(e.name, e.replica)
    const prev = queue.get(key)
    // Counts only grow: keep the larger one if the key is already queued.
    if (prev?.type === 'put' && BigInt(prev.value) >= e.count) return
    queue.set(key, { type: 'put', key, value: e.count.toString() })
  }

  /**
   * Write everything queued as one synced batch, then the next. At most
   * MAX_SYNCED_BATCHES_IN_FLIGHT run at once; 1 measured best here (50
   * clients: ~9k inc/s with 1, ~7k with 2, ~6k with 4): fewer, larger
   * batches beat overlapping fsyncs.
   */
  private async flushDurable (): Promise<void> {
    this.inFlight++
    try {
      while (this.durableWaiters.length > 0) {
        const ops = [...this.durableQueue.values()]
        const waiters = this.durableWaiters
        this.durableQueue = new Map()
        this.durableWaiters = []
        const started = performance.now()
        try {
          await this.db.batch(ops, { sync: true })
        } catch (err: any) {
          for (const w of waiters) w.reject(err)
          continue
        }
        this.onBatch?.(waiters.length, performance.now() - started)
        for (const w of waiters) w.resolve()
      }
    } finally {
      this.inFlight--
    }
  }

  private scheduleLazy (): void {
    if (this.lazyTimer !== undefined) return
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined
      void this.flushLazy()
    }, LAZY_FLUSH_MS)
  }

  private async flushLazy (): Promise<void> {
    const ops = [...this.lazyQueue.values()]
    this.lazyQueue = new Map()
    if (ops.length === 0) return
    this.lazyFlush = this.lazyFlush.then(async () => await this.db.batch(ops)).catch(() => {})
    await this.lazyFlush
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
    this.lazyQueue.set(memberKey(m.id), { type: 'put', key: memberKey(m.id), value: JSON.stringify(m) })
    this.scheduleLazy()
  }

  deleteMember (id: string): void {
    this.lazyQueue.set(memberKey(id), { type: 'del', key: memberKey(id) })
    this.scheduleLazy()
  }

  // ---- identity ----

  async identity (): Promise<Uint8Array | undefined> {
    const hex = await this.db.get(IDENTITY_KEY)
    return hex === undefined ? undefined : Uint8Array.from(Buffer.from(hex, 'hex'))
  }

  async saveIdentity (key: Uint8Array): Promise<void> {
    await this.db.put(IDENTITY_KEY, Buffer.from(key).toString('hex'), { sync: true })
  }

  /** Flush everything queued and close the database. */
  async close (): Promise<void> {
    while (this.inFlight > 0 || this.durableWaiters.length > 0) await new Promise(resolve => setTimeout(resolve, 1))
    clearTimeout(this.lazyTimer)
    this.lazyTimer = undefined
    await this.flushLazy()
    await this.lazyFlush
    await this.db.close()
  }
}
