import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { DigestTree, leafOf, childrenOf, hash64, DEPTH, FANOUT, LEAF_BITS } from '../../src/crdt/digest.js'
import { counterEntryHash } from '../../src/crdt/gcounter.js'

/** The counter dataset's update of one entry from `old` (0n = absent) to `now`. */
function update (t: DigestTree, leaf: number, name: string, replica: string, old: bigint, now: bigint): void {
  t.replace(leaf, old === 0n ? undefined : counterEntryHash(name, replica, old), counterEntryHash(name, replica, now))
}

interface Upd { name: string, replica: string, count: bigint }

const nameArb = fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/)
const replicaArb = fc.constantFrom('r1', 'r2', 'r3', '12D3KooWabc', '12D3KooWxyz')
/** A set of distinct (name, replica) keys with their counts. */
const stateArb = fc.uniqueArray(
  fc.record({ name: nameArb, replica: replicaArb, count: fc.bigInt({ min: 1n, max: 2n ** 70n }) }),
  { selector: u => `${u.name}\u0000${u.replica}`, maxLength: 40 }
)

function build (entries: Upd[]): DigestTree {
  const t = new DigestTree()
  for (const e of entries) update(t, leafOf(e.name), e.name, e.replica, 0n, e.count)
  return t
}

function sameLevels (a: DigestTree, b: DigestTree): void {
  assert.equal(a.levels.length, b.levels.length)
  for (let d = 0; d < a.levels.length; d++) assert.deepEqual(a.levels[d], b.levels[d], `level ${d} differs`)
}

/** Walk both trees from the root, descending only into differing nodes; returns the differing leaves. */
function walk (mine: DigestTree, theirs: DigestTree): number[] {
  let nodes = [0]
  for (let d = 0; d <= DEPTH; d++) {
    const diff = mine.differing(d, nodes, theirs.hashes(d, nodes))
    nodes = diff.map(k => nodes[k])
    if (nodes.length === 0) return []
    if (d < DEPTH) nodes = childrenOf(nodes)
  }
  return nodes.sort((x, y) => x - y)
}

function shuffle<T> (xs: T[], seed: number[]): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = seed[i % seed.length] % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

describe('DigestTree', () => {
  it('has the documented shape and leaf range', () => {
    const t = new DigestTree()
    assert.equal(t.levels.length, DEPTH + 1)
    for (let d = 0; d <= DEPTH; d++) assert.equal(t.levels[d].length, 2 * FANOUT ** d)
    for (const n of ['a', 'hits', 'x'.repeat(200), 'A.b_c~d-9']) {
      const l = leafOf(n)
      assert.ok(Number.isInteger(l) && l >= 0 && l < 2 ** LEAF_BITS)
      assert.equal(leafOf(n), l, 'leafOf is deterministic')
    }
    assert.deepEqual(hash64('abc'), hash64('abc'))
    assert.notDeepEqual(hash64('abc'), hash64('abd'))
  })

  it('an empty tree is all zero and an update changes every level on the path', () => {
    const t = new DigestTree()
    for (const l of t.levels) assert.ok(l.every(x => x === 0))
    update(t, leafOf('hits'), 'hits', 'r1', 0n, 5n)
    assert.deepEqual(walk(t, new DigestTree()), [leafOf('hits')])
  })

  it('same set of updates in any order gives identical levels', () => {
    fc.assert(fc.property(stateArb, fc.array(fc.nat(), { minLength: 1, maxLength: 50 }), (state, seed) => {
      sameLevels(build(state), build(shuffle(state, seed)))
    }))
  })

  it('chains of old->new updates, interleaved in any order, equal building with the final counts', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.record({
        name: nameArb,
        replica: replicaArb,
        steps: fc.array(fc.bigInt({ min: 1n, max: 2n ** 66n }), { minLength: 1, maxLength: 5 })
      }), { selector: u => `${u.name}\u0000${u.replica}`, maxLength: 20 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 50 }),
      (keys, seed) => {
        const ops: Array<[string, string, bigint, bigint]> = []
        const finals: Upd[] = []
        for (const k of keys) {
          let c = 0n
          for (const s of k.steps) { ops.push([k.name, k.replica, c, c + s]); c += s }
          finals.push({ name: k.name, replica: k.replica, count: c })
        }
        const t = new DigestTree()
        for (const [n, r, o, nw] of shuffle(ops, seed)) update(t, leafOf(n), n, r, o, nw)
        sameLevels(t, build(finals))
      }))
  })

  it('update from old to new count equals building fresh with the new count', () => {
    fc.assert(fc.property(stateArb, fc.nat(), fc.bigInt({ min: 1n, max: 2n ** 70n }), (state, pick, add) => {
      fc.pre(state.length > 0)
      const i = pick % state.length
      const t = build(state)
      const e = state[i]
      update(t, leafOf(e.name), e.name, e.replica, e.count, e.count + add)
      const fresh = state.map((x, j) => j === i ? { ...x, count: x.count + add } : x)
      sameLevels(t, build(fresh))
    }))
  })

  it('walking differing()/childrenOf() from the root reaches exactly the leaves of the differing counters', () => {
    fc.assert(fc.property(
      stateArb,
      fc.uniqueArray(fc.record({ name: nameArb, replica: replicaArb, count: fc.bigInt({ min: 1n, max: 2n ** 70n }) }),
        { selector: u => `${u.name}\u0000${u.replica}`, minLength: 1, maxLength: 4 }),
      (common, changes) => {
        const a = build(common)
        // b = common, with `changes` applied on top (new keys or grown counts)
        const byKey = new Map(common.map(u => [`${u.name}\u0000${u.replica}`, u]))
        const bState = new Map(byKey)
        const changedNames = new Set<string>()
        for (const c of changes) {
          const key = `${c.name}\u0000${c.replica}`
          const old = byKey.get(key)
          const count = (old?.count ?? 0n) + c.count
          bState.set(key, { name: c.name, replica: c.replica, count })
          changedNames.add(c.name)
        }
        const b = build([...bState.values()])
        const expected = [...new Set([...changedNames].map(leafOf))].sort((x, y) => x - y)
        assert.deepEqual(walk(a, b), expected)
        assert.deepEqual(walk(b, a), expected)
        assert.deepEqual(walk(a, build(shuffle(common, [7, 3, 11]))), [])
      }))
  })

  it('hashes() returns interleaved lanes of the requested nodes', () => {
    const t = build([{ name: 'hits', replica: 'r1', count: 3n }])
    const leaf = leafOf('hits')
    const h = t.hashes(DEPTH, [leaf, (leaf + 1) % 2 ** LEAF_BITS])
    assert.equal(h.length, 4)
    assert.ok(h[0] !== 0 || h[1] !== 0)
    assert.equal(h[2], 0); assert.equal(h[3], 0)
    assert.deepEqual([...t.hashes(0, [0])], [h[0], h[1]])
  })

  it('childrenOf lists FANOUT children per node in order', () => {
    assert.deepEqual(childrenOf([0]), Array.from({ length: FANOUT }, (_, i) => i))
    assert.deepEqual(childrenOf([2, 5]).slice(0, 2), [2 * FANOUT, 2 * FANOUT + 1])
    assert.equal(childrenOf([2, 5]).length, 2 * FANOUT)
  })
})
