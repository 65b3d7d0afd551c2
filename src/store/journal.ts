// The journal of own writes: an append-only file of group commits in
// <data-dir>/journal/<seq as 16 hex>.log, each record fdatasync'd before the
// writes in it are acknowledged. It lives outside LevelDB on purpose: LevelDB
// has one writer, so a synced journal put waited behind the previous group's
// fold (thousands of keys into the memtable) and the node sat ~45 % idle under
// batch load; a file append + fdatasync costs ~0.1 ms here and waits for
// nobody. The write and the fdatasync run on the main thread, as Redis runs
// its fsync with appendfsync always: handed to libuv's thread pool they
// queued behind LevelDB's work and two wake-ups of the event loop, and the
// mean commit took 2.2 ms instead of 0.8 (redis-benchmark INCR, 50 clients:
// 7,800 -> 11,000-16,000 commands/s, A/B on the same machine). A thread of
// its own for the fdatasync (a worker_threads worker, so nothing queues in
// front of it) was no better: the main thread woke once more per commit and
// the groups got smaller (32 against 47 increments a fsync), and in the same
// minutes POST /counter read 19.9k against 23.1k/s, redis-benchmark INCR 21.1k
// against 25.8k and SADD 19.2k against 31.7k (2026-12-02). The loop is
// blocked for that time, and it is the time every acknowledgement waits
// anyway. The store folds each record into its LevelDB keys unsynced and
// tells the journal when a fold landed (folded()).
//
// A record on disk: u32 LE payload length, u32 LE crc32 of the payload, the
// payload (JSON [key, value|null, ...]). A record that is short or fails its
// checksum ends its file: it was never acknowledged (appends are one at a
// time, and a failed append fails every write queued behind it).
//
// A file is written in place over zeros when it can be: a spare file of
// ROTATE_BYTES zeros, made and synced in the background (libuv's pool), is
// renamed into the next file's name at rotation (and right away while the
// current file is not such a file). An fdatasync of an append must also
// commit the file's new size (ext4 journal); over blocks that already exist
// it flushes data only, as PostgreSQL's pre-zeroed WAL segments do. Mean
// commit of redis-benchmark INCR, 50 clients, four A/B pairs back to back:
// 0.41/0.67/0.44/0.52 ms appending, 0.41/0.39/0.36/0.33 ms in place
// (commands/s 24.8k/18.4k/23.0k/21.2k against 23.1k/21.9k/25.8k/24.9k; in a
// slower hour of the disk 0.52-0.88 against 0.28-0.49 ms, +30-58 %). A spare
// is made only while the filesystem has MIN_FREE_FOR_SPARE free (a small
// disk keeps its space for data); a failed one is deleted and tried again
// after SPARE_RETRY_MS. Zeros end a file's records (a length of 0).
//
// Files rotate at ROTATE_BYTES. A full (sealed) file is deleted once every
// record in it is folded AND LevelDB has made those folds durable
// (syncStore: a memtable flush; a synced LevelDB write alone would not cover
// writes in the log of a memtable being flushed): until then a machine crash
// could lose a fold, and replay brings it back. Files go oldest first, never
// out of order: replaying an old file after newer ones were deleted would
// put older values over newer ones.
import { existsSync, openSync, closeSync, readdirSync, readFileSync, unlinkSync, mkdirSync, ftruncateSync, writeSync, fdatasyncSync, fsyncSync, renameSync, statfsSync } from 'node:fs'
import { open as openAsync } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

/** A sealed file is retired at this size; replay at open reads at most a few of them. */
const ROTATE_BYTES = 16 << 20
const HEADER = 8
/** The spare file (not a journal file: replay reads only <seq>.log). */
const SPARE = 'next.spare'
const MIN_FREE_FOR_SPARE = 256 << 20
const SPARE_RETRY_MS = 60_000

export type JournalRecord = Array<string | null>

/** Where a record ends: its file and the byte offset just past it. */
export interface JournalPosition { seq: number, end: number }

/** "<seq>:<end>", as the store keeps the position its folds reached. */
export function formatPosition (p: JournalPosition): string { return `${p.seq}:${p.end}` }
export function parsePosition (text: string | undefined): JournalPosition | undefined {
  const m = /^(\d{1,15}):(\d{1,15})$/.exec(text ?? '')
  return m === null ? undefined : { seq: Number(m[1]), end: Number(m[2]) }
}

interface JournalFile { seq: number, path: string, unfolded: number, sealed: boolean, inPlace: boolean }

const fileName = (seq: number): string => `${seq.toString(16).padStart(16, '0')}.log`
const seqOf = (name: string): number => parseInt(name.slice(0, 16), 16)

export class Journal {
  private current: JournalFile
  private fd: number
  private size = 0
  /** Every file not deleted yet, oldest first (Map keeps insertion order; seqs only grow). */
  private readonly files = new Map<number, JournalFile>()
  private retiring = false
  /** The spare file of zeros (see the header): being made, ready to be renamed, or neither. */
  private spare: 'none' | 'making' | 'ready' = 'none'
  private spareFailedAt = -Infinity
  /** The spare being written, if any: close waits for it, so nothing writes in the dir after. */
  private spareWork: Promise<void> = Promise.resolve()
  private closed = false

  private constructor (
    private readonly dir: string,
    nextSeq: number,
    /** Makes every fold handed to LevelDB so far durable. */
    private readonly syncStore: () => Promise<void>
  ) {
    const { file, fd } = this.openFile(nextSeq)
    this.current = file
    this.fd = fd
    this.files.set(file.seq, file)
  }

  /**
   * Every record the journal dir holds after `foldedUpTo` (the position the
   * store's folds reached: records up to it are in LevelDB already), oldest
   * first (what a killed process left), and a journal that appends to a new
   * file after them. The caller folds the records, then deletes the
   * `replayed` files (Journal.discard).
   */
  static open (dir: string, syncStore: () => Promise<void>, foldedUpTo?: JournalPosition): { journal: Journal, records: JournalRecord[], replayed: string[] } {
    if (!existsSync(dir)) mkdirSync(dir)
    const names = readdirSync(dir).filter(n => /^[0-9a-f]{16}\.log$/.test(n)).sort()
    const records: JournalRecord[] = []
    for (const name of names) {
      const seq = seqOf(name)
      if (foldedUpTo !== undefined && seq < foldedUpTo.seq) continue
      for (const { record, end } of readRecordsAt(readFileSync(join(dir, name)))) {
        if (foldedUpTo === undefined || seq > foldedUpTo.seq || end > foldedUpTo.end) records.push(record)
      }
    }
    const last = names.length === 0 ? -1 : seqOf(names[names.length - 1])
    try { unlinkSync(join(dir, SPARE)) } catch {} // a killed process may have left it half made
    const journal = new Journal(dir, last + 1, syncStore)
    return { journal, records, replayed: names.map(n => join(dir, n)) }
  }

  /** Delete files whose records are folded and synced into LevelDB (after open or recovery). */
  static discard (paths: string[]): void {
    for (const p of paths) unlinkSync(p)
  }

  /**
   * Append one record and fdatasync it. Resolves with where it went (hand
   * its seq to folded() once the record's fold has landed in LevelDB).
   */
  async append (record: JournalRecord): Promise<JournalPosition> {
    const file = this.current
    await this.writeRecord(record)
    file.unfolded++
    const at = { seq: file.seq, end: this.size }
    if (this.size >= ROTATE_BYTES) this.rotate()
    return at
  }

  /**
   * A record whose write or fdatasync failed was not acknowledged: cut it off
   * the file, so no recovery or restart folds it (SPEC §2: not counted).
   */
  private dropTail (size: number): void {
    try { ftruncateSync(this.fd, size) } catch {}
    this.size = size
  }

  /** Append an empty record: whether the disk takes a journal write again (recovery). */
  async probe (): Promise<void> {
    await this.writeRecord([])
  }

  private async writeRecord (record: JournalRecord): Promise<void> {
    const payload = Buffer.from(JSON.stringify(record), 'utf8')
    const frame = Buffer.allocUnsafe(HEADER + payload.length)
    frame.writeUInt32LE(payload.length, 0)
    frame.writeUInt32LE(crc32(payload), 4)
    payload.copy(frame, HEADER)
    const fd = this.fd
    const before = this.size
    try {
      for (let off = 0; off < frame.length;) off += writeSync(fd, frame, off, frame.length - off, before + off)
      fdatasyncSync(fd)
    } catch (err) {
      this.dropTail(before)
      throw err
    }
    this.size += frame.length
  }

  /** The fold of one record of file `seq` is in LevelDB (unsynced). */
  folded (seq: number): void {
    const file = this.files.get(seq)
    if (file === undefined) return // retired by a recovery meanwhile
    file.unfolded--
    void this.retireReady()
  }

  /**
   * Start over after a recovery or before a clean close: the caller has
   * folded and synced every record (replayed from the files): delete them all
   * and continue in a new file.
   */
  restart (): string[] {
    const next = this.openFile(this.current.seq + 1) // first: if it fails, nothing changed
    const old = [...this.files.values()].map(f => f.path)
    try { closeSync(this.fd) } catch {}
    this.files.clear()
    this.files.set(next.file.seq, next.file)
    this.current = next.file
    this.fd = next.fd
    this.size = 0
    return old
  }

  /** Every record of every file still here (recovery folds them again). */
  records (): JournalRecord[] {
    const out: JournalRecord[] = []
    for (const f of this.files.values()) { // oldest first already
      try { out.push(...readRecords(readFileSync(f.path))) } catch {}
    }
    return out
  }

  /** Whether every record appended so far has been folded. */
  get allFolded (): boolean {
    for (const f of this.files.values()) if (f.unfolded > 0) return false
    return true
  }

  /** Close the file; resolves once a spare being written has stopped (and removed itself). */
  async close (): Promise<void> {
    this.closed = true
    closeSync(this.fd)
    await this.spareWork
  }

  /** Close and delete every file (all folded and synced: a clean close). */
  async discardAll (): Promise<void> {
    this.closed = true
    try { closeSync(this.fd) } catch {}
    Journal.discard([...this.files.values()].map(f => f.path))
    this.files.clear()
    await this.spareWork
    if (this.spare === 'ready') try { unlinkSync(join(this.dir, SPARE)) } catch {}
  }

  /** Create and open file `seq` (not yet listed in `files`): the spare renamed when one is ready. */
  private openFile (seq: number): { file: JournalFile, fd: number } {
    const file: JournalFile = { seq, path: join(this.dir, fileName(seq)), unfolded: 0, sealed: false, inPlace: false }
    if (this.spare === 'ready') {
      this.spare = 'none'
      try {
        renameSync(join(this.dir, SPARE), file.path)
        file.inPlace = true
      } catch {}
    }
    // Records are written at their offset (pwrite): over the zeros of a spare, or past the end.
    const fd = openSync(file.path, file.inPlace ? 'r+' : 'w')
    try {
      syncDir(this.dir) // the new name survives a machine crash too
    } catch (err) {
      closeSync(fd)
      throw err
    }
    this.makeSpare()
    return { file, fd }
  }

  /** Start making the next spare in the background, if none is and the disk has room. */
  private makeSpare (): void {
    if (this.spare !== 'none' || this.closed || performance.now() - this.spareFailedAt < SPARE_RETRY_MS) return
    try {
      const fs = statfsSync(this.dir)
      if (fs.bavail * fs.bsize < MIN_FREE_FOR_SPARE) return
    } catch {
      return
    }
    this.spare = 'making'
    this.spareWork = this.writeSpare().then(() => {
      this.spare = 'ready'
      // Not in place yet (a new journal): move on to the spare now.
      if (!this.closed && !this.current.inPlace) this.rotate()
    }, () => {
      this.spare = 'none'
      this.spareFailedAt = performance.now()
      try { unlinkSync(join(this.dir, SPARE)) } catch {}
    })
  }

  private async writeSpare (): Promise<void> {
    const fh = await openAsync(join(this.dir, SPARE), 'w')
    try {
      const zeros = Buffer.alloc(1 << 20)
      for (let at = 0; at < ROTATE_BYTES; at += zeros.length) {
        if (this.closed) throw new Error('journal closed')
        await fh.write(zeros, 0, zeros.length, at)
      }
      await fh.datasync()
    } finally {
      await fh.close()
    }
  }

  /**
   * Seal the current file when it holds at least `minBytes` of records and
   * every one of them is folded, so that it goes like any sealed file
   * (retireReady, after LevelDB flushed the folds). A quiet node then has no
   * journal to replay after kill -9, and LevelDB no log to recover: 1M
   * names, a start after kill -9 spent ~0.4 s refolding a 16 MB file that
   * had been folded long before. Only onto a spare that is ready: a quiet
   * node writes no new file of zeros for this more than once per file.
   */
  checkpoint (minBytes: number): void {
    if (this.closed || this.size < minBytes || this.current.unfolded > 0 || this.spare !== 'ready') return
    this.rotate()
  }

  /** Continue in a new file; if it cannot be made, keep appending to this one (and try at the next append). */
  private rotate (): void {
    let next: { file: JournalFile, fd: number }
    try {
      next = this.openFile(this.current.seq + 1)
    } catch {
      return
    }
    try { closeSync(this.fd) } catch {}
    this.current.sealed = true
    this.current = next.file
    this.fd = next.fd
    this.files.set(next.file.seq, next.file)
    this.size = 0
    void this.retireReady()
  }

  /** Delete sealed, fully folded files, oldest first, once LevelDB has their folds durably; a failure is retried at the next fold. */
  private async retireReady (): Promise<void> {
    if (this.retiring) return
    this.retiring = true
    try {
      for (;;) {
        const oldest = this.files.values().next().value
        if (oldest === undefined || !oldest.sealed || oldest.unfolded > 0) break
        await this.syncStore()
        if (this.files.get(oldest.seq) !== oldest) continue // a recovery started over meanwhile
        this.files.delete(oldest.seq)
        unlinkSync(oldest.path)
      }
    } catch {
      // Kept: a later retire, open or recovery deals with it.
    } finally {
      this.retiring = false
    }
  }
}

function syncDir (dir: string): void {
  const fd = openSync(dir, 'r')
  try { fsyncSync(fd) } finally { closeSync(fd) }
}

/** The intact records of one file, in order; a torn or damaged record ends it. */
export function readRecords (buf: Buffer): JournalRecord[] {
  return readRecordsAt(buf).map(r => r.record)
}

/** readRecords, with the offset just past each record. */
function readRecordsAt (buf: Buffer): Array<{ record: JournalRecord, end: number }> {
  const out: Array<{ record: JournalRecord, end: number }> = []
  for (let at = 0; at + HEADER <= buf.length;) {
    const len = buf.readUInt32LE(at)
    if (len === 0) break // the zeros of a file written in place (no record is empty: the least is "[]")
    const end = at + HEADER + len
    if (end > buf.length) break
    const payload = buf.subarray(at + HEADER, end)
    if (crc32(payload) !== buf.readUInt32LE(at + 4)) break
    try {
      out.push({ record: JSON.parse(payload.toString('utf8')) as JournalRecord, end })
    } catch {
      break
    }
    at = end
  }
  return out
}
