import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { itemHash, murmur3x86128, pairBytes, itemLeaf, itemEntryHash } from '../../src/crdt/itemhash.js'
import { LEAF_BITS } from '../../src/crdt/digest.js'

const hex = (h: Uint32Array): string => Array.from(h, w => w.toString(16).padStart(8, '0')).join('')
const tenantArb = fc.stringMatching(/^[A-Za-z0-9._~-]{1,30}$/)
/** Ids as the spec allows them (no control characters), any script, including astral characters. */
const idArb = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter(s => !/[\u0000-\u001f\u007f]/.test(s))

describe('itemhash', () => {
  it('is MurmurHash3_x86_128 (seed 0): published vectors', () => {
    // Vectors of the reference C implementation over UTF-8 bytes (h1 h2 h3 h4).
    const vectors: Array<[string, string]> = [
      ['', '00000000000000000000000000000000'],
      ['H', 'f69feb5df45637a0f45637a0f45637a0'],
      ['Hello', '2360ae465e6336c6ad45b3f4ad45b3f4'],
      ['Hello World!', '6bee9883eb1be4f59dfb7172ae3fbea9'],
      ['Hello World! Hello', '453fc5363af752fbaa52e054540a402c'],
      ['Hello World! Hello World!', '86163d2b245b8ee23c4d056024166d77'],
      ['メロス', 'dcfa2df52a3c5ab9d74d6d304e537d23'],
      ['メロスは激怒した。必ず、かの', '1d028a63972c672b69df633a4bf21e2e']
    ]
    for (const [input, want] of vectors) assert.equal(hex(murmur3x86128(Buffer.from(input, 'utf8'))), want, input)
  })

  it('hashes the UTF-8 bytes of tenant NUL id, for every tail length and script', () => {
    fc.assert(fc.property(tenantArb, idArb, (tenant, id) => {
      const want = murmur3x86128(pairBytes(tenant, id))
      if (want[2] === 0 && want[3] === 0) want[3] = 1
      assert.equal(hex(itemHash(tenant, id)), hex(want))
    }), { numRuns: 2000 })
  })

  it('hashes long (over 1 KB of scratch) and non-ASCII tenants the same way', () => {
    const id = 'ü'.repeat(600) + 'x'.repeat(700)
    assert.equal(hex(itemHash('t', id)), hex(murmur3x86128(pairBytes('t', id))))
    assert.equal(hex(itemHash('tenant', 'a\uD800b')), hex(murmur3x86128(pairBytes('tenant', 'a\uFFFDb'))), 'a lone surrogate hashes as U+FFFD, as LevelDB stores it')
  })

  it('separates tenant from id: moving the boundary changes the hash', () => {
    assert.notEqual(hex(itemHash('ab', 'c')), hex(itemHash('a', 'bc')))
    assert.notEqual(hex(itemHash('t1', 'x')), hex(itemHash('t', '1x')))
  })

  it('writes into a reused output without allocating a new one', () => {
    const out = new Uint32Array(4)
    assert.equal(itemHash('t', 'a', out), out)
    const first = hex(out)
    itemHash('t', 'b', out)
    assert.notEqual(hex(out), first)
  })

  it('spreads similar ids evenly over leaves and words', () => {
    const buckets = new Uint32Array(256)
    const leaves = new Set<number>()
    const seen = new Set<string>()
    const h = new Uint32Array(4)
    const n = 256 * 400
    for (let i = 0; i < n; i++) {
      itemHash(`tenant-${i % 1000}`, `item-${i}`, h)
      buckets[h[0] >>> 24]++
      leaves.add(itemLeaf(h[0]))
      seen.add(hex(h))
      assert.ok(itemLeaf(h[0]) < 2 ** LEAF_BITS)
    }
    assert.equal(seen.size, n, 'no collisions')
    // 400 expected per bucket, sd 20: every bucket within 6 sd.
    for (const b of buckets) assert.ok(b > 280 && b < 520, `bucket count ${b}`)
    // 102,400 items over 2^20 leaves: about 93,000 distinct leaves expected.
    assert.ok(leaves.size > 90000, `${leaves.size} leaves used`)
  })

  it('exports the digest entry hash as words 2 and 3', () => {
    const h = itemHash('t', 'x')
    assert.deepEqual(itemEntryHash(h), [h[2], h[3]])
  })
})
