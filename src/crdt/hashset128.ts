// An exact set of 128-bit hashes (itemhash.ts) in typed arrays: the in-memory
// index of every (tenant, id) pair a node holds, while the ids themselves stay
// on disk. A JS Set of strings would cost over 100 bytes per item; this costs
// 16 bytes per slot, about 20-30 bytes per item with the load factors below.
//
// Layout: 2^shardBits shards chosen by the top bits of word 0; each shard is
// an open-addressing table (linear probing) over a Uint32Array of 4 words per
// slot. A slot whose words 2 and 3 are both zero is empty: itemHash never
// produces that, and add() applies the same remap (word 3 := 1) to any caller
// value so the rule holds for every input.
//
// Shards grow independently (x1.5 at load 0.8) so growing costs old + new
// arrays of ONE shard, never of the whole table: at 10M items over 256
// shards a shard is ~0.9 MB, so the transient extra memory of a grow is
// about 1 MB, and no single insert pauses for more than a shard's rehash
// (well under a millisecond). Growth x1.5 (rather than doubling) keeps the
// load between 0.53 and 0.8, i.e. 20-30 bytes per item, instead of 21-43.
// Capacity need not be a power of two: the home slot is the multiply-shift
// reduction of word 1 (independent of the shard bits in word 0).
//
// Snapshot (toBuffer/fromBuffer), all little-endian uint32:
//   [0] magic 0x58494443 ("CDIX")   [1] version 1   [2] shardBits   [3] 0
//   [4] size low 32 bits            [5] size high bits
//   [6 .. 6+S)  item count of each shard (S = 2^shardBits)
//   then the entries, 4 words each, grouped by shard in shard order
//   then a CRC-32 (zlib) of every byte before it.
// Only occupied entries are written (16 bytes per item, e.g. 160 MB at 10M),
// so the file does not depend on table capacities or probing; loading
// presizes each shard and reinserts (~1 s at 10M), checking the checksum,
// the counts, that every entry sits in its shard and that none repeats.

import { crc32 } from 'node:zlib'
import { joinChunks, type Chunk } from '../util/bytes.js'
import { StorageError } from '../errors.js'

export interface HashSet128Options {
  /** log2 of the number of shards (0-16). Default 8. */
  shardBits?: number
  /** Grow a shard when it would exceed this fraction of its slots. Default 0.8. */
  maxLoad?: number
  /** Capacity multiplier on growth. Default 1.5. */
  growth?: number
}

const SNAPSHOT_MAGIC = 0x58494443
const SNAPSHOT_VERSION = 1
const HEADER_WORDS = 6
const MIN_SHARD_SLOTS = 8
/** 2^-32: multiply-shift maps word 1 onto [0, capacity). */
const INV_2_32 = 1 / 4294967296

export class HashSet128 {
  readonly shardBits: number
  private readonly shift: number
  private readonly maxLoad: number
  private readonly growth: number
  private readonly tables: Uint32Array[]
  /** Slots of each shard. */
  private readonly capacities: Float64Array
  /** Items of each shard. */
  private readonly counts: Float64Array
  /** Item count at which a shard grows. */
  private readonly limits: Float64Array
  private items = 0

  constructor (options: HashSet128Options = {}) {
    const shardBits = options.shardBits ?? 8
    const maxLoad = options.maxLoad ?? 0.8
    const growth = options.growth ?? 1.5
    if (!Number.isInteger(shardBits) || shardBits < 0 || shardBits > 16) throw new RangeError(`shardBits must be an integer in 0..16, got ${shardBits}`)
    if (!(maxLoad > 0.1 && maxLoad < 0.95)) throw new RangeError(`maxLoad must be in (0.1, 0.95), got ${maxLoad}`)
    if (!(growth >= 1.25 && growth <= 4)) throw new RangeError(`growth must be in [1.25, 4], got ${growth}`)
    this.shardBits = shardBits
    // `>>> 32` is a no-op in JS, so one shard is handled by the sharding test below.
    this.shift = 32 - shardBits
    this.maxLoad = maxLoad
    this.growth = growth
    const shards = 1 << shardBits
    this.tables = new Array<Uint32Array>(shards)
    this.capacities = new Float64Array(shards)
    this.counts = new Float64Array(shards)
    this.limits = new Float64Array(shards)
    for (let s = 0; s < shards; s++) this.allocate(s, MIN_SHARD_SLOTS)
  }

  /** Number of distinct hashes held. */
  get size (): number { return this.items }

  /** Bytes held by the tables and their bookkeeping. */
  get bytes (): number {
    let total = this.capacities.byteLength + this.counts.byteLength + this.limits.byteLength + this.tables.length * 8
    for (const t of this.tables) total += t.byteLength
    return total
  }

  /** Adds a hash; true if it was not there before. */
  add (h0: number, h1: number, h2: number, h3: number): boolean {
    h0 >>>= 0; h1 >>>= 0; h2 >>>= 0; h3 >>>= 0
    if (h2 === 0 && h3 === 0) h3 = 1
    const s = this.shardBits === 0 ? 0 : h0 >>> this.shift
    if (this.counts[s] >= this.limits[s]) this.grow(s)
    const table = this.tables[s]
    const j = this.probe(table, this.capacities[s], h0, h1, h2, h3)
    if (table[j + 2] !== 0 || table[j + 3] !== 0) return false
    table[j] = h0; table[j + 1] = h1; table[j + 2] = h2; table[j + 3] = h3
    this.counts[s]++
    this.items++
    return true
  }

  /** True if the hash is in the set. */
  has (h0: number, h1: number, h2: number, h3: number): boolean {
    h0 >>>= 0; h1 >>>= 0; h2 >>>= 0; h3 >>>= 0
    if (h2 === 0 && h3 === 0) h3 = 1
    const s = this.shardBits === 0 ? 0 : h0 >>> this.shift
    const table = this.tables[s]
    const j = this.probe(table, this.capacities[s], h0, h1, h2, h3)
    return table[j + 2] !== 0 || table[j + 3] !== 0
  }

  /**
   * Linear probing from the slot h1 picks: the word index of the hash, or
   * of the empty slot where it belongs (words 2-3 both 0 mark empty).
   */
  private probe (table: Uint32Array, cap: number, h0: number, h1: number, h2: number, h3: number): number {
    for (let i = Math.floor(h1 * cap * INV_2_32); ; i = i + 1 === cap ? 0 : i + 1) {
      const j = i << 2
      const w2 = table[j + 2]
      const w3 = table[j + 3]
      if ((w2 === 0 && w3 === 0) || (w2 === h2 && w3 === h3 && table[j] === h0 && table[j + 1] === h1)) return j
    }
  }

  /** Calls fn for every hash, shard by shard (so in ascending order of word 0's top shardBits bits). */
  forEach (fn: (h0: number, h1: number, h2: number, h3: number) => void): void {
    for (const table of this.tables) {
      for (let j = 0; j < table.length; j += 4) {
        if (table[j + 2] !== 0 || table[j + 3] !== 0) fn(table[j], table[j + 1], table[j + 2], table[j + 3])
      }
    }
  }

  /**
   * Every hash whose top `bits` bits of word 0 are marked in `marks` (a 1
   * byte per marked value, 2^bits bytes), 4 words each, shard by shard. Shards
   * with no marked value are not read.
   */
  selectByPrefix (bits: number, marks: Uint8Array): Uint32Array {
    if (!Number.isInteger(bits) || bits < this.shardBits || bits > 24 || marks.length !== 2 ** bits) throw new RangeError(`selectByPrefix needs ${this.shardBits}..24 bits and a mark per value`)
    const perShard = bits - this.shardBits
    const shift = 32 - bits
    let out = new Uint32Array(1024)
    let n = 0
    for (let s = 0; s < this.tables.length; s++) {
      if (this.counts[s] === 0 || marks.subarray(s << perShard, (s + 1) << perShard).indexOf(1) === -1) continue
      const table = this.tables[s]
      for (let j = 0; j < table.length; j += 4) {
        if ((table[j + 2] === 0 && table[j + 3] === 0) || marks[table[j] >>> shift] !== 1) continue
        if (n === out.length) {
          const grown = new Uint32Array(out.length * 2)
          grown.set(out)
          out = grown
        }
        out[n] = table[j]; out[n + 1] = table[j + 1]; out[n + 2] = table[j + 2]; out[n + 3] = table[j + 3]
        n += 4
      }
    }
    return out.subarray(0, n)
  }

  /** A self-checking snapshot of the set (format in the file comment). */
  toBuffer (): Buffer {
    return joinChunks(this.toChunks())
  }

  /**
   * toBuffer() as chunks made while they are written (LazyChunk): the
   * header and the shard counts at once, then each shard's entries, then the
   * CRC over all before it. A 10M-item index is 160 MB of copies that so
   * never exist whole (RSS 2 s after a 10M load, while the quiet snapshot is
   * written, was 50 B an item). Make them once, in order (the CRC follows
   * them), with no add in between: a shard that changed no longer has the
   * length it promised (chunkBytes throws), and a quiet snapshot is dropped
   * anyway when anything was written meanwhile.
   */
  toChunks (): Chunk[] {
    const shards = this.tables.length
    const head = Buffer.allocUnsafe((HEADER_WORDS + shards) * 4)
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
    view.setUint32(0, SNAPSHOT_MAGIC, true)
    view.setUint32(4, SNAPSHOT_VERSION, true)
    view.setUint32(8, this.shardBits, true)
    view.setUint32(12, 0, true)
    view.setUint32(16, this.items % 4294967296, true)
    view.setUint32(20, Math.floor(this.items / 4294967296), true)
    for (let s = 0; s < shards; s++) view.setUint32((HEADER_WORDS + s) * 4, this.counts[s], true)
    let crc = crc32(head)
    const chunks: Chunk[] = [head]
    for (let s = 0; s < shards; s++) {
      if (this.counts[s] === 0) continue
      chunks.push({
        byteLength: this.counts[s] * 16,
        make: () => {
          const bytes = this.shardEntries(s)
          crc = crc32(bytes, crc)
          return bytes
        }
      })
    }
    chunks.push({
      byteLength: 4,
      make: () => {
        const out = Buffer.allocUnsafe(4)
        out.writeUInt32LE(crc >>> 0, 0)
        return out
      }
    })
    return chunks
  }

  /** The occupied entries of shard s in table order, 16 bytes each (little-endian words). */
  private shardEntries (s: number): Buffer {
    const table = this.tables[s]
    const out = Buffer.allocUnsafe(this.counts[s] * 16)
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
    let p = 0
    for (let j = 0; j < table.length && p < out.byteLength; j += 4) {
      if (table[j + 2] === 0 && table[j + 3] === 0) continue
      view.setUint32(p, table[j], true)
      view.setUint32(p + 4, table[j + 1], true)
      view.setUint32(p + 8, table[j + 2], true)
      view.setUint32(p + 12, table[j + 3], true)
      p += 16
    }
    return out
  }

  /**
   * Rebuilds a set from toBuffer() output. Throws StorageError (code
   * `storage`) on any damage, so the caller can fall back to rebuilding from
   * the store: a wrong checksum, length, count, or an entry that is in the
   * wrong shard, repeated, or empty.
   */
  static fromBuffer (buf: Uint8Array, options: Omit<HashSet128Options, 'shardBits'> = {}): HashSet128 {
    const bad = (why: string): never => { throw new StorageError(`item index snapshot rejected: ${why}`) }
    if (buf.byteLength < HEADER_WORDS * 4 + 4) bad(`too short (${buf.byteLength} bytes)`)
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    if (view.getUint32(0, true) !== SNAPSHOT_MAGIC) bad('not an item index snapshot (magic)')
    const version = view.getUint32(4, true)
    if (version !== SNAPSHOT_VERSION) bad(`unknown version ${version}`)
    const shardBits = view.getUint32(8, true)
    if (shardBits > 16) bad(`shardBits ${shardBits} out of range`)
    const size = view.getUint32(16, true) + view.getUint32(20, true) * 4294967296
    const shards = 2 ** shardBits
    const expected = (HEADER_WORDS + shards + size * 4) * 4 + 4
    if (buf.byteLength !== expected) bad(`length ${buf.byteLength}, expected ${expected} for ${size} items`)
    const body = buf.byteLength - 4
    const sum = crc32(buf.subarray(0, body))
    if (sum !== view.getUint32(body, true)) bad('checksum mismatch')

    const set = new HashSet128({ ...options, shardBits })
    let total = 0
    const shardCounts: number[] = []
    for (let s = 0; s < shards; s++) {
      const n = view.getUint32((HEADER_WORDS + s) * 4, true)
      shardCounts.push(n)
      total += n
    }
    if (total !== size) bad(`shard counts add up to ${total}, header says ${size}`)
    let p = (HEADER_WORDS + shards) * 4
    let entry = 0
    for (let s = 0; s < shards; s++) {
      const n = shardCounts[s]
      // Room for n at the load a shard has just after growing, so the next inserts do not rehash at once.
      set.allocate(s, Math.ceil(n * set.growth / set.maxLoad))
      for (let k = 0; k < n; k++, p += 16, entry++) {
        const h0 = view.getUint32(p, true)
        const h1 = view.getUint32(p + 4, true)
        const h2 = view.getUint32(p + 8, true)
        const h3 = view.getUint32(p + 12, true)
        if (shardBits > 0 && h0 >>> (32 - shardBits) !== s) bad(`entry ${entry} is not in shard ${s}`)
        if (h2 === 0 && h3 === 0) bad(`entry ${entry} is empty`)
        if (!set.add(h0, h1, h2, h3)) bad(`entry ${entry} repeats`)
      }
    }
    return set
  }

  /** Replaces shard s with an empty table of at least `slots` slots. */
  private allocate (s: number, slots: number): void {
    const cap = Math.max(MIN_SHARD_SLOTS, Math.ceil(slots))
    this.tables[s] = new Uint32Array(cap * 4)
    this.capacities[s] = cap
    this.counts[s] = 0
    // At least one slot always stays empty, so probing terminates.
    this.limits[s] = Math.min(cap - 1, Math.floor(cap * this.maxLoad))
  }

  /** Moves shard s into a table `growth` times larger. */
  private grow (s: number): void {
    const old = this.tables[s]
    const count = this.counts[s]
    this.allocate(s, this.capacities[s] * this.growth)
    const table = this.tables[s]
    const cap = this.capacities[s]
    for (let j = 0; j < old.length; j += 4) {
      const h2 = old[j + 2]
      const h3 = old[j + 3]
      if (h2 === 0 && h3 === 0) continue
      // Hashes are distinct, so the probe ends at an empty slot.
      const k = this.probe(table, cap, old[j], old[j + 1], h2, h3)
      table[k] = old[j]; table[k + 1] = old[j + 1]; table[k + 2] = h2; table[k + 3] = h3
    }
    this.counts[s] = count
  }
}
