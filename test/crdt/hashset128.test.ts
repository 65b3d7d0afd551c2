import { strict as assert } from 'node:assert'
import { crc32 } from 'node:zlib'
import fc from 'fast-check'
import { HashSet128 } from '../../src/crdt/hashset128.js'
import { itemHash } from '../../src/crdt/itemhash.js'
import { StorageError } from '../../src/errors.js'
import { joinChunks, chunkBytes } from '../../src/util/bytes.js'

type Pair = [string, string]
const pairArb: fc.Arbitrary<Pair> = fc.tuple(fc.constantFrom('t1', 't2', 'acme.io', 'x'), fc.string({ minLength: 1, maxLength: 4 }).filter(s => !s.includes('\u0000')))
const key = (p: Pair): string => `${p[0]}\u0000${p[1]}`

function contents (set: HashSet128): Set<string> {
  const out = new Set<string>()
  set.forEach((a, b, c, d) => out.add(`${a},${b},${c},${d}`))
  return out
}

/** Rewrites a snapshot's trailing checksum after a deliberate edit, so only the structural checks can catch it. */
function reseal (buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4)
  return buf
}

describe('HashSet128', () => {
  it('agrees with a Set of strings: membership, first-add-only, size (several shard counts)', () => {
    fc.assert(fc.property(fc.array(pairArb, { maxLength: 300 }), fc.array(pairArb, { maxLength: 50 }), fc.constantFrom(0, 1, 3, 8),
      (adds, probes, shardBits) => {
        const set = new HashSet128({ shardBits })
        const ref = new Set<string>()
        const h = new Uint32Array(4)
        for (const p of adds) {
          itemHash(p[0], p[1], h)
          const isNew = !ref.has(key(p))
          ref.add(key(p))
          assert.equal(set.add(h[0], h[1], h[2], h[3]), isNew)
          assert.equal(set.size, ref.size)
        }
        for (const p of [...adds, ...probes]) {
          itemHash(p[0], p[1], h)
          assert.equal(set.has(h[0], h[1], h[2], h[3]), ref.has(key(p)))
        }
        assert.equal(contents(set).size, ref.size)
      }), { numRuns: 300 })
  })

  it('treats raw words exactly, including zero words and the top bit', () => {
    const word = fc.oneof(fc.constantFrom(0, 1, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }))
    fc.assert(fc.property(fc.array(fc.tuple(word, word, word, word), { maxLength: 200 }), (hashes) => {
      const set = new HashSet128({ shardBits: 2 })
      const ref = new Set<string>()
      for (const [a, b, c, d] of hashes) {
        // The documented remap: words 2 and 3 both zero become word 3 = 1.
        const k = `${a},${b},${c},${c === 0 && d === 0 ? 1 : d}`
        assert.equal(set.add(a, b, c, d), !ref.has(k))
        ref.add(k)
      }
      assert.equal(set.size, ref.size)
      assert.deepEqual(contents(set), ref)
    }), { numRuns: 200 })
  })

  it('stays exact across many growths of one shard', () => {
    const set = new HashSet128({ shardBits: 0 })
    const h = new Uint32Array(4)
    const n = 200_000
    for (let i = 0; i < n; i++) {
      itemHash('t', `item-${i}`, h)
      assert.equal(set.add(h[0], h[1], h[2], h[3]), true)
    }
    for (let i = 0; i < n; i++) {
      itemHash('t', `item-${i}`, h)
      assert.equal(set.add(h[0], h[1], h[2], h[3]), false)
      assert.equal(set.has(h[0], h[1], h[2], h[3]), true)
      itemHash('u', `item-${i}`, h)
      assert.equal(set.has(h[0], h[1], h[2], h[3]), false)
    }
    assert.equal(set.size, n)
    // 16 bytes a slot at a load between 0.53 and 0.8.
    assert.ok(set.bytes / n >= 16 / 0.8 && set.bytes / n <= 16 / 0.5, `${set.bytes / n} bytes per item`)
  })

  it('selectByPrefix gives exactly the hashes whose word-0 prefix is marked, each once, whatever the shards, growth and clustering', () => {
    const word = fc.integer({ min: 0, max: 0xffffffff })
    // Few distinct top bits too, so hashes of one prefix pile up in one shard.
    const clustered = fc.tuple(fc.integer({ min: 0, max: 7 }), word, word, word).map(([top, a, b, c]) => [((top << 29) | (a >>> 3)) >>> 0, b, c, 1 + (c % 1000)] as const)
    fc.assert(fc.property(
      fc.constantFrom(0, 1, 3, 4), fc.constantFrom(4, 6), fc.array(fc.oneof(fc.tuple(word, word, word, word), clustered), { maxLength: 400 }), fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 30 }),
      (shardBits, bits, hashes, marked) => {
        const set = new HashSet128({ shardBits })
        for (const [a, b, c, d] of hashes) set.add(a, b, c, d)
        const marks = new Uint8Array(2 ** bits)
        for (const m of marked) marks[m % marks.length] = 1
        const got = set.selectByPrefix(bits, marks)
        const listed: string[] = []
        for (let i = 0; i < got.length; i += 4) listed.push(`${got[i]},${got[i + 1]},${got[i + 2]},${got[i + 3]}`)
        const want = [...contents(set)].filter(h => marks[Number(h.split(',')[0]) >>> (32 - bits)] === 1)
        assert.deepEqual(listed.sort(), want.sort())
      }), { numRuns: 300 })
    assert.throws(() => new HashSet128({ shardBits: 8 }).selectByPrefix(4, new Uint8Array(16)), RangeError)
  })

  it('round-trips through a snapshot', () => {
    fc.assert(fc.property(fc.array(pairArb, { maxLength: 300 }), fc.constantFrom(0, 4, 8), (adds, shardBits) => {
      const set = new HashSet128({ shardBits })
      const h = new Uint32Array(4)
      for (const p of adds) { itemHash(p[0], p[1], h); set.add(h[0], h[1], h[2], h[3]) }
      const copy = HashSet128.fromBuffer(set.toBuffer())
      assert.equal(copy.size, set.size)
      assert.equal(copy.shardBits, shardBits)
      assert.deepEqual(contents(copy), contents(set))
      // The copy keeps working: old entries are not new, new ones are.
      for (const p of adds) { itemHash(p[0], p[1], h); assert.equal(copy.add(h[0], h[1], h[2], h[3]), false) }
      itemHash('fresh', 'never-added', h)
      assert.equal(copy.add(h[0], h[1], h[2], h[3]), true)
    }), { numRuns: 100 })
  })

  it('round-trips 100,000 items and stays 16 bytes per item on disk', () => {
    const set = new HashSet128()
    const h = new Uint32Array(4)
    for (let i = 0; i < 100_000; i++) { itemHash(`t${i % 100}`, `id-${i}`, h); set.add(h[0], h[1], h[2], h[3]) }
    const buf = set.toBuffer()
    assert.equal(buf.length, 24 + 256 * 4 + 100_000 * 16 + 4)
    const copy = HashSet128.fromBuffer(buf)
    assert.equal(copy.size, 100_000)
    for (let i = 0; i < 100_000; i += 7) { itemHash(`t${i % 100}`, `id-${i}`, h); assert.ok(copy.has(h[0], h[1], h[2], h[3])) }
  })

  it('snapshot chunks are made as they are written; a set that changed before its shard was made is refused, not written short', () => {
    const set = new HashSet128({ shardBits: 2 })
    for (let i = 0; i < 1000; i++) set.add(i * 2654435761, i, i + 1, 7)
    const whole = set.toBuffer()
    assert.deepEqual(joinChunks(set.toChunks()), whole)
    assert.equal(HashSet128.fromBuffer(joinChunks(set.toChunks())).size, 1000)
    const chunks = set.toChunks()
    set.add(0xffffffff, 1, 2, 3) // lands in the last shard, before its chunk is made
    assert.throws(() => chunks.map(chunkBytes), /changed while written/)
  })

  it('rejects a damaged snapshot with a storage error', () => {
    const set = new HashSet128({ shardBits: 2 })
    const h = new Uint32Array(4)
    for (let i = 0; i < 50; i++) { itemHash('t', `i${i}`, h); set.add(h[0], h[1], h[2], h[3]) }
    const good = set.toBuffer()
    const rejects = (buf: Buffer, why: RegExp): void => {
      assert.throws(() => HashSet128.fromBuffer(buf), (e: unknown) => e instanceof StorageError && e.code === 'storage' && why.test(e.message))
    }
    // Any single flipped byte, anywhere.
    fc.assert(fc.property(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const bad = Buffer.from(good)
      bad[at] ^= x
      assert.throws(() => HashSet128.fromBuffer(bad), StorageError)
    }), { numRuns: 300 })
    rejects(good.subarray(0, good.length - 16), /length/)
    rejects(Buffer.concat([good, Buffer.alloc(16)]), /length/)
    rejects(Buffer.alloc(10), /too short/)
    rejects(reseal(Buffer.from(good).fill(0, 0, 4)), /magic/)

    const entries = 24 + 4 * 4
    // A valid checksum over a repeated entry (the second entry overwritten by the first, counts unchanged)...
    const first = set.toBuffer()
    const shard0 = first.readUInt32LE(24)
    assert.ok(shard0 >= 2, 'shard 0 holds at least two entries')
    first.copy(first, entries + 16, entries, entries + 16)
    rejects(reseal(first), /repeats/)
    // ...an entry moved to a shard its top bits do not name...
    const moved = set.toBuffer()
    moved.writeUInt32LE((moved.readUInt32LE(entries) | 0xc0000000) >>> 0, entries)
    rejects(reseal(moved), /not in shard 0/)
    // ...and shard counts that do not add up.
    const counts = set.toBuffer()
    counts.writeUInt32LE(shard0 + 1, 24)
    rejects(reseal(counts), /add up/)
  })
})
