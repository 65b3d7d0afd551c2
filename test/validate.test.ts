import { strict as assert } from 'node:assert'
import { parseIncrement, isValidName, MAX_INCREMENT } from '../src/validate.js'

describe('validate', () => {
  describe('parseIncrement', () => {
    const accepted: Array<[unknown, bigint]> = [
      ['1', 1n],
      ['42', 42n],
      ['9007199254740991', 9007199254740991n],
      [5, 5n],
      [1, 1n],
      [Number.MAX_SAFE_INTEGER, 9007199254740991n]
    ]
    for (const [input, expected] of accepted) {
      it(`accepts ${JSON.stringify(input)} (${typeof input})`, () => {
        assert.equal(parseIncrement(input), expected)
      })
    }

    const rejected: unknown[] = [
      '0', '-1', '1.5', '1e3', '0x10', '9007199254740992', '', ' ', 'abc', '+1', '1_000',
      '00000000000000000000001', ' 1', '1 ', '1\n', '99999999999999999999',
      1.5, -3, 0, NaN, Infinity, 2 ** 53, null, undefined, true, {}, [1], 1n
    ]
    for (const input of rejected) {
      const label = typeof input === 'bigint' ? `${input}n` : typeof input === 'number' ? String(input) : JSON.stringify(input) ?? String(input)
      it(`rejects ${label} (${typeof input})`, () => {
        assert.equal(parseIncrement(input), undefined)
      })
    }

    it('MAX_INCREMENT is 2^53-1', () => {
      assert.equal(MAX_INCREMENT, 2n ** 53n - 1n)
    })
  })

  describe('isValidName', () => {
    const accepted = ['a', 'hits', 'A.b_c~d-9', 'x'.repeat(200), '.', '~', '-']
    for (const n of accepted) {
      it(`accepts ${JSON.stringify(n.length > 20 ? `${n.slice(0, 5)}…(${n.length})` : n)}`, () => {
        assert.equal(isValidName(n), true)
      })
    }
    const rejected = ['', 'x'.repeat(201), 'a/b', 'a b', 'ü', 'a%2F', 'a\nb', 'hits\n', 'a?b', 'a#b', 'a:b', '\u0000']
    for (const n of rejected) {
      it(`rejects ${JSON.stringify(n.length > 20 ? `${n.slice(0, 5)}…(${n.length})` : n)}`, () => {
        assert.equal(isValidName(n), false)
      })
    }
  })
})
