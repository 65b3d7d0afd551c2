import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { SortedNames, pageOfSorted, type PageQuery } from '../src/sorted-names.js'

/** The reference: sort everything, filter, cut. */
function reference (names: string[], q: PageQuery): { names: string[], next: string | null } {
  const all = [...new Set(names)].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    .filter(n => n.startsWith(q.prefix ?? '') && (q.after === undefined || n > q.after))
  const page = all.slice(0, q.limit)
  return { names: page, next: all.length > q.limit ? page[page.length - 1] : null }
}

const name = fc.stringMatching(/^[a-d.~-]{1,6}$/)
const query = fc.record({
  prefix: fc.option(fc.stringMatching(/^[a-d]{0,2}$/), { nil: undefined }),
  after: fc.option(fc.stringMatching(/^[a-d.~-]{0,6}$/), { nil: undefined }),
  limit: fc.integer({ min: 1, max: 50 })
})

describe('SortedNames', () => {
  it('pages like sort + filter + slice, whatever the insertion order and duplicates', () => {
    fc.assert(fc.property(fc.array(name, { maxLength: 3000 }), fc.array(query, { minLength: 1, maxLength: 5 }), (names, queries) => {
      const s = new SortedNames()
      for (const n of names) s.add(n)
      for (const q of queries) assert.deepEqual(s.page(q), reference(names, q))
      assert.equal(s.size, new Set(names).size)
      assert.deepEqual(pageOfSorted(s.all(), queries[0]), reference(names, queries[0]))
    }), { numRuns: 200 })
  })

  it('walking the pages with next visits every matching name exactly once, also while names are added', () => {
    fc.assert(fc.property(fc.array(name, { minLength: 1, maxLength: 3000 }), fc.integer({ min: 1, max: 40 }), (names, limit) => {
      const s = new SortedNames()
      const half = names.length >> 1
      for (const n of names.slice(0, half)) s.add(n)
      const seen: string[] = []
      let after: string | undefined
      for (let guard = 0; guard < 10000; guard++) {
        const p = s.page({ limit, after })
        seen.push(...p.names)
        if (guard === 0) for (const n of names.slice(half)) s.add(n)
        if (p.next === null) break
        after = p.next
      }
      assert.equal(new Set(seen).size, seen.length, 'no name twice')
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1] < seen[i])
      // Every name present before the walk began is seen.
      for (const n of names.slice(0, half)) assert.ok(seen.includes(n), n)
    }), { numRuns: 100 })
  })

  it('keeps many blocks in order (block splits)', () => {
    const s = new SortedNames()
    const names = Array.from({ length: 20000 }, (_, i) => `n${(i * 7919) % 20000}`)
    for (const n of names) s.add(n)
    const all = s.all()
    assert.equal(all.length, 20000)
    assert.deepEqual(all, [...names].sort())
    assert.ok(s.has('n19999') && !s.has('n20000'))
    assert.deepEqual(s.page({ prefix: 'n1999', limit: 3 }), { names: ['n1999', 'n19990', 'n19991'], next: 'n19991' })
  })
})
