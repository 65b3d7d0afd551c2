import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { Map128 } from '../../src/util/map128.js'

describe('Map128 (src/util/map128.ts)', () => {
  // Words drawn from a few values, so keys share their first 30 bits (one JS Map slot) and differ only later.
  const word = fc.constantFrom(0, 1, 3, 4, 0xffffffff, 0x80000000)
  const hash = fc.tuple(word, word, word, word)
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), h: hash, v: fc.integer() }),
    fc.record({ kind: fc.constant('delete' as const), h: hash }),
    fc.record({ kind: fc.constant('get' as const), h: hash })
  )

  it('behaves like a Map keyed by all 128 bits, through sets, deletes and gets of colliding keys', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 400 }), ops => {
      const m = new Map128<number>()
      const model = new Map<string, number>()
      for (const o of ops) {
        const k = o.h.join(',')
        if (o.kind === 'set') {
          m.set(Uint32Array.from(o.h), o.v)
          model.set(k, o.v)
        } else if (o.kind === 'delete') {
          assert.equal(m.delete(Uint32Array.from(o.h)), model.delete(k))
        } else {
          assert.equal(m.get(o.h), model.get(k))
        }
        assert.equal(m.size, model.size)
      }
      for (const [k, v] of model) assert.equal(m.get(k.split(',').map(Number)), v)
    }), { numRuns: 300 })
  })
})
