import { strict as assert } from 'node:assert'
import { encode } from 'cborg'
import { typedView, packParts, unpackParts, joinChunks } from '../../src/util/bytes.js'

describe('bytes (src/util/bytes.ts)', () => {
  it('packParts round-trips fields and parts of any length, handing parts back as aligned views of one buffer', () => {
    const parts = [new Uint8Array([1, 2, 3]), new Uint8Array(0), Uint8Array.from({ length: 1001 }, (_, i) => i & 0xff), new Uint8Array(new Float64Array([1.5, -2]).buffer)]
    const bytes = joinChunks(packParts({ v: 2, n: 7 }, parts))
    const back = unpackParts(bytes)
    assert.equal(back.fields.v, 2)
    assert.equal(back.fields.n, 7)
    assert.deepEqual(back.parts.map(p => [...p]), parts.map(p => [...p]))
    for (const p of back.parts) {
      assert.equal(p.buffer, bytes.buffer, 'a view, not a copy')
      assert.equal(p.byteOffset % 8, 0)
    }
    assert.deepEqual([...typedView(back.parts[3], Float64Array)], [1.5, -2])
  })

  it('unpackParts refuses bytes it did not write', () => {
    const good = joinChunks(packParts({ v: 2 }, [new Uint8Array(64)]))
    const bad = [
      new Uint8Array(2), // no header length
      Uint8Array.from([0xff, 0xff, 0, 0, 1, 2]), // header past the end
      good.subarray(0, good.length - 8), // a part past the end
      encode({ v: 1, k: {} }), // the previous snapshot format
      (() => { const h = encode({ p: [-1] }); const b = new Uint8Array(4 + h.length); new DataView(b.buffer).setUint32(0, h.length, true); b.set(h, 4); return b })()
    ]
    for (const b of bad) assert.throws(() => unpackParts(b))
  })

  it('typedView is a view when aligned, a copy when not, and refuses a ragged length', () => {
    const buf = new Uint8Array(17)
    buf.set([1, 0, 0, 0], 1)
    const aligned = buf.subarray(0, 8)
    assert.equal(typedView(aligned, Uint32Array).buffer, buf.buffer)
    const odd = buf.subarray(1, 9)
    const copy = typedView(odd, Uint32Array)
    assert.notEqual(copy.buffer, buf.buffer)
    assert.equal(copy[0], 1)
    assert.throws(() => typedView(buf.subarray(0, 6), Uint32Array), RangeError)
  })
})
