import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { packParts, unpackParts, joinChunks } from '../../src/util/bytes.js'
import { GCounter, CounterSet, type Entry } from '../../src/crdt/gcounter.js'

type Op = [string, bigint]

const replicaArb = fc.constantFrom('a', 'b', 'c', 'd', 'e')
const countArb = fc.bigInt({ min: 1n, max: 2n ** 80n })
/** A state as a list of (replica, count) pairs; later duplicates keep the max via merge. */
const stateArb = fc.array(fc.tuple(replicaArb, countArb), { maxLength: 8 })
/** A history of increments: (replica, by). */
const opsArb = fc.array(fc.tuple(replicaArb, fc.bigInt({ min: 1n, max: 2n ** 70n })), { maxLength: 30 })

function fromPairs (pairs: Op[]): GCounter {
  const c = new GCounter()
  c.merge(pairs)
  return c
}

function sorted (c: GCounter): Op[] {
  return [...c.entries].sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)
}

function assertSame (x: GCounter, y: GCounter): void {
  assert.deepEqual(sorted(x), sorted(y))
  assert.equal(x.value, y.value)
}

function sumOf (c: GCounter): bigint {
  let s = 0n
  for (const v of c.entries.values()) s += v
  return s
}

function merged (...cs: GCounter[]): GCounter {
  const out = new GCounter()
  for (const c of cs) out.merge(c.entries)
  return out
}

describe('GCounter', () => {
  it('increment adds to the replica count and returns the full new count as delta', () => {
    const c = new GCounter()
    assert.deepEqual(c.increment('a', 3n), { replica: 'a', count: 3n })
    assert.deepEqual(c.increment('a', 4n), { replica: 'a', count: 7n })
    assert.deepEqual(c.increment('b', 1n), { replica: 'b', count: 1n })
    assert.equal(c.value, 8n)
    assert.equal(c.count('a'), 7n)
    assert.equal(c.count('zzz'), 0n)
  })

  it('rejects non-positive increments without changing state', () => {
    const c = new GCounter()
    c.increment('a', 2n)
    assert.throws(() => c.increment('a', 0n), RangeError)
    assert.throws(() => c.increment('a', -5n), RangeError)
    assert.equal(c.value, 2n)
    assert.equal(c.count('a'), 2n)
  })

  it('merge returns only entries that grew', () => {
    const c = fromPairs([['a', 5n], ['b', 2n]])
    const grown = c.merge([['a', 3n], ['b', 9n], ['c', 1n], ['a', 5n]])
    assert.deepEqual(grown, [{ replica: 'b', count: 9n }, { replica: 'c', count: 1n }])
    assert.equal(c.value, 15n)
  })

  it('merge is commutative', () => {
    fc.assert(fc.property(stateArb, stateArb, (p, q) => {
      const x = fromPairs(p); const y = fromPairs(q)
      assertSame(merged(x, y), merged(y, x))
    }))
  })

  it('merge is associative', () => {
    fc.assert(fc.property(stateArb, stateArb, stateArb, (p, q, r) => {
      const x = fromPairs(p); const y = fromPairs(q); const z = fromPairs(r)
      assertSame(merged(merged(x, y), z), merged(x, merged(y, z)))
      // in-place merge sequence too
      const left = x.clone(); left.merge(y.entries); left.merge(z.entries)
      const yz = y.clone(); yz.merge(z.entries)
      const right = x.clone(); right.merge(yz.entries)
      assertSame(left, right)
    }))
  })

  it('merge is idempotent', () => {
    fc.assert(fc.property(stateArb, stateArb, (p, q) => {
      const x = fromPairs(p)
      const before = sorted(x)
      assert.deepEqual(x.merge(x.clone().entries), [])
      assertSame(x, fromPairs(before))
      const xy = merged(x, fromPairs(q))
      const again = xy.clone()
      assert.deepEqual(again.merge(fromPairs(q).entries), [])
      assert.deepEqual(again.merge(x.entries), [])
      assertSame(again, xy)
    }))
  })

  it('applying deltas in any order, duplicated, equals merging full states', () => {
    fc.assert(fc.property(opsArb, opsArb, fc.infiniteStream(fc.nat()), fc.integer({ min: 1, max: 3 }), (opsA, opsB, rnd, dup) => {
      // two source replicas, each incrementing on its own id and others' ids
      const srcA = new GCounter(); const srcB = new GCounter()
      const deltas: Entry[] = []
      for (const [r, by] of opsA) deltas.push(srcA.increment('A' + r, by))
      for (const [r, by] of opsB) deltas.push(srcB.increment('B' + r, by))
      // duplicate and shuffle
      const all: Entry[] = []
      for (let i = 0; i < dup; i++) all.push(...deltas)
      const it = rnd[Symbol.iterator]()
      for (let i = all.length - 1; i > 0; i--) {
        const j = (it.next().value as number) % (i + 1)
        ;[all[i], all[j]] = [all[j], all[i]]
      }
      const target = new GCounter()
      for (const d of all) target.merge([[d.replica, d.count]])
      assertSame(target, merged(srcA, srcB))
      // also: applying via mergeEntry
      const t2 = new GCounter()
      for (const d of all) t2.mergeEntry(d.replica, d.count)
      assertSame(t2, target)
    }))
  })

  it('value never decreases under merge', () => {
    fc.assert(fc.property(stateArb, fc.array(stateArb, { maxLength: 6 }), (p, others) => {
      const x = fromPairs(p)
      let prev = x.value
      const prevCounts = new Map(x.entries)
      for (const o of others) {
        x.merge(o)
        assert.ok(x.value >= prev, `value went from ${prev} to ${x.value}`)
        for (const [r, v] of prevCounts) assert.ok(x.count(r) >= v)
        prev = x.value
        for (const [r, v] of x.entries) prevCounts.set(r, v)
      }
    }))
  })

  it('value equals the sum of entries after any mix of increments and merges', () => {
    fc.assert(fc.property(fc.array(fc.oneof(
      fc.tuple(fc.constant('inc' as const), replicaArb, fc.bigInt({ min: 1n, max: 2n ** 66n })),
      fc.tuple(fc.constant('merge' as const), replicaArb, countArb)
    ), { maxLength: 40 }), (ops) => {
      const c = new GCounter()
      for (const [kind, r, n] of ops) {
        if (kind === 'inc') c.increment(r, n)
        else c.mergeEntry(r, n)
        assert.equal(c.value, sumOf(c))
        for (const v of c.entries.values()) assert.ok(v > 0n)
      }
    }))
  })

  it('values beyond 2^53 and 2^64 stay exact', () => {
    const c = new GCounter()
    const max = 2n ** 53n - 1n
    c.increment('a', max)
    c.increment('a', max)
    c.increment('a', 2n)
    assert.equal(c.value, 2n ** 54n)
    assert.equal(c.value.toString(), '18014398509481984')
    c.mergeEntry('b', 2n ** 64n + 1n)
    assert.equal(c.value, 2n ** 54n + 2n ** 64n + 1n)
    assert.equal(c.value.toString(), '18464758472219033601')
    // a single +1 past 2^64 is visible
    c.increment('b', 1n)
    assert.equal(c.count('b'), 2n ** 64n + 2n)
    fc.assert(fc.property(fc.array(fc.bigInt({ min: 2n ** 60n, max: 2n ** 70n }), { minLength: 1, maxLength: 20 }), (bys) => {
      const g = new GCounter()
      let expected = 0n
      for (const by of bys) { g.increment('x', by); expected += by }
      assert.equal(g.value, expected)
      assert.equal(g.count('x'), expected)
    }))
  })

  it('clone is independent of later mutations', () => {
    const c = fromPairs([['a', 1n]])
    const k = c.clone()
    c.increment('a', 5n)
    c.mergeEntry('b', 3n)
    assert.equal(k.value, 1n)
    assert.deepEqual(sorted(k), [['a', 1n]])
  })
})

describe('CounterSet (every counter of a replica)', () => {
  const name = fc.constantFrom('x', 'y', 'z', 'hits', 'a.b')
  // Counts around 2^53, where a counter leaves the typed arrays for a GCounter.
  const count = fc.oneof(fc.bigInt({ min: 1n, max: 50n }), fc.bigInt({ min: 2n ** 53n - 3n, max: 2n ** 53n + 3n }), fc.bigInt({ min: 1n, max: 2n ** 70n }))
  const ops = fc.array(fc.tuple(name, replicaArb, count), { maxLength: 60 })

  it('matches a GCounter per name for apply, get, value, valueWith and subsOf, and survives snapshot/restore', () => {
    fc.assert(fc.property(ops, list => {
      const set = new CounterSet()
      const model = new Map<string, GCounter>()
      const seen: string[] = []
      set.onNewKey = n => seen.push(n)
      for (const [n, r, c] of list) {
        let m = model.get(n)
        if (m === undefined) model.set(n, m = new GCounter())
        assert.equal(set.apply(n, r, c), m.mergeEntry(r, c))
      }
      for (const s of [set, CounterSet.restore(joinChunks(set.snapshot()))]) {
        assert.equal(s.keys, model.size)
        assert.deepEqual([...s.names()], [...model.keys()])
        for (const [n, m] of model) {
          assert.equal(s.value(n), m.value)
          for (const r of ['a', 'b', 'c', 'd', 'e']) {
            assert.equal(s.get(n, r), m.count(r))
            assert.equal(s.valueWith(n, r, 7n), m.value - m.count(r) + 7n)
          }
          assert.deepEqual(new Map(s.subsOf(n)), m.entries)
        }
        assert.equal(s.value('unknown'), 0n)
        assert.deepEqual(s.subsOf('unknown'), [])
      }
      assert.deepEqual(seen, [...model.keys()])
    }), { numRuns: 300 })
  })

  it('restore refuses bytes it did not write', () => {
    const set = new CounterSet()
    set.apply('x', 'a', 3n)
    assert.throws(() => CounterSet.restore(new Uint8Array([1, 2, 3])))
    const good = joinChunks(set.snapshot())
    assert.doesNotThrow(() => CounterSet.restore(good))
    const { fields, parts } = unpackParts(good)
    const changed: Array<[Record<string, unknown>, Uint8Array[]]> = [
      [{ ...fields, f: 2 }, parts],
      [{ ...fields, n: 2 }, parts],
      [fields, [Buffer.from('x\ny'), ...parts.slice(1)]],
      [fields, [parts[0], new Uint8Array(new Uint32Array([5]).buffer), ...parts.slice(2)]],
      [fields, [parts[0], parts[1], new Uint8Array(new Float64Array([0.5]).buffer), ...parts.slice(3)]],
      [fields, parts.slice(0, 6)]
    ]
    for (const [f, p] of changed) {
      const { p: _lengths, ...rest } = f
      assert.throws(() => CounterSet.restore(joinChunks(packParts(rest, p))), /bad counter snapshot/)
    }
  })
})
