import { strict as assert } from 'node:assert'
import { toJson } from '../../src/api/json.js'

describe('toJson', () => {
  it('writes bigint as a bare number literal, exact past 2^53 and 2^64', () => {
    assert.equal(toJson({ v: 2n ** 70n }), '{"v":1180591620717411303424}')
    assert.equal(toJson({ v: 0n }), '{"v":0}')
    assert.equal(toJson(2n ** 64n + 1n), '18446744073709551617')
    assert.equal(toJson({ v: 2n ** 53n + 1n }), '{"v":9007199254740993}')
  })

  it('matches JSON.stringify for values without bigints', () => {
    const samples: unknown[] = [
      { a: 1, b: 'x', c: [1, 2, { d: null }], e: true },
      'plain', 42, null, [],
      { error: 'bad name "a b"', s: 'line\nbreak \\ "quoted"' }
    ]
    for (const s of samples) assert.equal(toJson(s), JSON.stringify(s))
  })

  it('leaves strings containing "big:" untouched', () => {
    const v = { s: 'big:123', t: 'xbig:1', u: '\\u0000big:5', w: 'big:' }
    assert.equal(toJson(v), JSON.stringify(v))
    assert.deepEqual(JSON.parse(toJson(v)), v)
    const mixed = { n: 5n, s: 'big:5' }
    assert.equal(toJson(mixed), '{"n":5,"s":"big:5"}')
  })

  it('handles bigints nested in arrays and objects', () => {
    const v = {
      name: 'hits',
      value: 18446744073709551617n,
      replicas: { a: 2n ** 64n, b: 1n },
      list: [1n, [2n, { x: 3n }], 'big:4', 2n ** 100n]
    }
    assert.equal(toJson(v),
      '{"name":"hits","value":18446744073709551617,"replicas":{"a":18446744073709551616,"b":1},' +
      '"list":[1,[2,{"x":3}],"big:4",1267650600228229401496703205376]}')
    assert.equal(toJson([{ name: 'a', value: 7n }, { name: 'b', value: 0n }]), '[{"name":"a","value":7},{"name":"b","value":0}]')
    // output is valid JSON with the same shape
    const parsed = JSON.parse(toJson(v))
    assert.equal(parsed.replicas.b, 1)
    assert.equal(parsed.list[2], 'big:4')
  })
})
