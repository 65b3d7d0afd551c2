import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { encode } from 'cborg'
import { deflateRawSync } from 'node:zlib'
import {
  packEntries, unpackEntries, encodeDelta, decodeDelta, decodeFrame, encodeFrame, packMembers, unpackMembers,
  ProtocolError, WIRE_VERSION, hashBytes, hashesFrom, type KindLookup
} from '../../src/net/wire.js'
import { counterKind } from '../../src/crdt/gcounter.js'
import type { DatasetKind, Entry } from '../../src/crdt/dataset.js'

const R1 = '12D3KooWFXYC1WJRBZ9TjwgkbLDtxrxcD7gKcsE8EHPDnSnLy38M'
const R2 = '12D3KooWAbCdEfGhJkLmNpQrStUvWxYz123456789abcdefghijk'

/** A set-like dataset (subs are free strings, anyone may write) to prove the codec is generic. */
const setKind: DatasetKind = {
  ...counterKind,
  tag: 's',
  name: 'test-set',
  isSub: (s: string) => s.length >= 1 && s.length <= 256,
  isValue: (v: bigint) => v === 1n,
  ownerOf: () => undefined,
  subIsOrigin: false
} as unknown as DatasetKind
const lookup: KindLookup = tag => tag === 'c' ? counterKind as unknown as DatasetKind : tag === 's' ? setKind : undefined

const nameArb = fc.stringMatching(/^[A-Za-z0-9._~-]{1,20}$/)
const counterEntryArb = fc.record({ ds: fc.constant('c'), key: nameArb, sub: fc.constantFrom(R1, R2), value: fc.bigInt({ min: 1n, max: 2n ** 80n }) })
const setEntryArb = fc.record({ ds: fc.constant('s'), key: nameArb, sub: fc.string({ minLength: 1, maxLength: 30 }), value: fc.constant(1n) })

function canon (es: Entry[]): string[] {
  return es.map(e => `${e.ds}|${e.key}|${e.sub}|${e.value}`).sort()
}

describe('wire format (src/net/wire.ts)', () => {
  it('entries of any dataset round-trip through CBOR', () => {
    fc.assert(fc.property(fc.array(fc.oneof(counterEntryArb, setEntryArb), { maxLength: 60 }), entries => {
      const bytes = encodeFrame({ k: 'e', ...packEntries(entries, lookup), end: true })
      assert.deepEqual(canon(unpackEntries(decodeFrame(bytes), lookup)), canon(entries))
    }))
  })

  it('text keeps every code point, a leading U+FEFF too (cborg\'s decoder would drop it), in frames and in deflated deltas', () => {
    const subs = ['\ufeff', '\ufeffz', '\ufeff\ufeff', `\ufeff${'x'.repeat(40)}`, `\ufeff${'é'.repeat(100)}`, 'a\ufeff', '\ufffd(', '🙂']
    const entries = subs.map(sub => ({ ds: 's', key: 't', sub, value: 1n }))
    const bytes = encodeFrame({ k: 'e', ...packEntries(entries, lookup), end: true })
    assert.deepEqual(canon(unpackEntries(decodeFrame(bytes), lookup)), canon(entries))
    const many = Array.from({ length: 300 }, (_, i) => ({ ds: 's', key: 't', sub: `\ufeff${i}`, value: 1n }))
    assert.deepEqual(canon(decodeDelta(encodeDelta({ sentAt: 1, entries: many }, lookup, R1), lookup, R1).entries), canon(many))
    fc.assert(fc.property(fc.array(fc.record({ ds: fc.constant('s'), key: nameArb, sub: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), value: fc.constant(1n) }), { maxLength: 20 }), es => {
      assert.deepEqual(canon(unpackEntries(decodeFrame(encodeFrame({ k: 'e', ...packEntries(es, lookup), end: true })), lookup)), canon(es))
    }))
  })

  it('byte strings decoded from a Buffer are copies (a receive buffer is reused after decoding)', () => {
    const buf = Buffer.from(encodeFrame({ k: 'h', h: new Uint8Array([1, 2, 3, 4]) }))
    const f = decodeFrame(buf)
    buf.fill(0)
    assert.deepEqual([...(f.h as Uint8Array)], [1, 2, 3, 4])
  })

  it('gossip leaves out the sub of counters (it is the signer) and restores it from the signer', () => {
    const entries: Entry[] = [{ ds: 'c', key: 'hits', sub: R1, value: 5n }, { ds: 's', key: 't1', sub: 'item/1', value: 1n }]
    const bytes = encodeDelta({ sentAt: 123, entries }, lookup, R1)
    assert.ok(!Buffer.from(bytes).toString('latin1').includes(R1), 'the replica id is not on the wire')
    const back = decodeDelta(bytes, lookup, R1)
    assert.equal(back.sentAt, 123)
    assert.deepEqual(canon(back.entries), canon(entries))
    // Read as coming from another signer, the count is that signer's.
    assert.equal(decodeDelta(bytes, lookup, R2).entries.find(e => e.ds === 'c')?.sub, R2)
    assert.throws(() => encodeDelta({ sentAt: 1, entries: [{ ds: 'c', key: 'x', sub: R2, value: 1n }] }, lookup, R1), ProtocolError)
  })

  it('a big delta travels deflated and decodes to the same entries; a bad or oversized deflated body is refused', () => {
    const entries: Entry[] = Array.from({ length: 200 }, (_, i) => ({ ds: 's', key: `t${i % 7}`, sub: `order-${100000 + i}`, value: 1n }))
    const bytes = encodeDelta({ sentAt: 9, entries }, lookup, R1)
    const plain = encode({ t: 9, g: { s: entries.flatMap(e => [e.key, 1, e.sub, 1]) } })
    assert.ok(bytes.length * 3 < plain.length, `deflated ${bytes.length} B vs ${plain.length} B`)
    assert.deepEqual(canon(decodeDelta(bytes, lookup, R1).entries), canon(entries))
    // A small delta is sent as it is (zlib's set-up would cost more than it saves).
    const small = encodeDelta({ sentAt: 1, entries: entries.slice(0, 2) }, lookup, R1)
    assert.ok(!('z' in (decodeFrame(small) as object)))
    const refused = [
      encode({ t: 1, z: new Uint8Array([1, 2, 3, 4]) }), // not deflate
      encode({ t: 1, z: 'text' }),
      encode({ t: 1, z: deflateRawSync(encode([1, 2])) }), // inflates to something other than groups
      encode({ t: 1, z: deflateRawSync(encode({ s: ['t', 1, 'a', 1] })), g: {} }), // both forms
      encode({ t: 1, z: deflateRawSync(Buffer.alloc(40 << 20)) }) // a bomb: 40 MiB from ~40 KB
    ]
    for (const b of refused) assert.throws(() => decodeDelta(b, lookup, R1), ProtocolError)
  })

  it('a delta of a few KB is deflated with a small window it names; one without the name inflates with the full window', () => {
    const entries: Entry[] = Array.from({ length: 40 }, (_, i) => ({ ds: 's', key: 't1', sub: `order-${100000 + i}`, value: 1n }))
    const bytes = encodeDelta({ sentAt: 9, entries }, lookup, R1)
    const frame = decodeFrame(bytes) as { z?: Uint8Array, w?: number }
    assert.ok(frame.z instanceof Uint8Array)
    assert.equal(frame.w, 10)
    assert.deepEqual(canon(decodeDelta(bytes, lookup, R1).entries), canon(entries))
    // As a sender before `w` wrote it (window 15, no w):
    const g = encode({ s: entries.flatMap(e => [e.key, 1, e.sub, 1]) })
    assert.deepEqual(canon(decodeDelta(encode({ t: 9, z: deflateRawSync(g) }), lookup, R1).entries), canon(entries))
    for (const w of [8, 16, 'x', 10.5]) assert.throws(() => decodeDelta(encode({ t: 9, z: frame.z, w }), lookup, R1), ProtocolError)
  })

  it('rejects junk, truncated groups, bad values, unknown datasets and other wire versions', () => {
    const bad: unknown[] = [
      { g: { c: ['x', 1] } }, // truncated: no sub, no value
      { g: { c: ['x', 1, 0] }, s: [R1] }, // value missing
      { g: { c: ['x', 1, 0, 0] }, s: [R1] }, // value 0
      { g: { c: ['x', 1, 0, -3] }, s: [R1] }, // negative
      { g: { c: ['x', 1, 0, 1.5] }, s: [R1] }, // fraction
      { g: { c: ['bad/name', 1, 0, 1] }, s: [R1] },
      { g: { c: ['x', 1, 7, 1] }, s: [R1] }, // sub index out of range
      { g: { c: ['x', 1, 'not-a-peer-id', 1] } },
      { g: { c: ['x', 1, 0, 1, 'y', 1, 0, 1] }, s: ['not-a-peer-id'] }, // a bad sub in the table (checked once, still checked)
      { g: { c: ['x', 99, 0, 1] }, s: [R1] }, // group size beyond the data
      { g: { z: ['x', 1, 'a', 1] } }, // unknown dataset
      { g: [1, 2, 3] },
      { g: { s: ['t', 1, 'a', 2] } } // a set value other than 1
    ]
    for (const w of bad) assert.throws(() => unpackEntries(w, lookup), ProtocolError, JSON.stringify(w, (_k, v) => typeof v === 'bigint' ? String(v) : v))
    assert.throws(() => decodeFrame(Uint8Array.from([0xff, 0x00, 0x13])), ProtocolError)
    assert.throws(() => decodeFrame(encode([1, 2])), ProtocolError)
    assert.throws(() => decodeFrame(encodeFrame({ k: 'hello', v: 1 })), /wire version 1/)
    assert.throws(() => decodeFrame(encodeFrame({ k: 'hello', v: WIRE_VERSION + 1 })), /wire version 3/)
    assert.equal(decodeFrame(encodeFrame({ k: 'hello', v: WIRE_VERSION })).k, 'hello')
  })

  it('fingerprints (sync \'eh\'), two words an entry, survive a frame; a wrong count is refused', () => {
    fc.assert(fc.property(fc.array(fc.oneof(counterEntryArb, setEntryArb), { maxLength: 50 }), es => {
      const h = Uint32Array.from(es.flatMap(e => lookup(e.ds)!.hashOf(e.key, e.sub, e.value)))
      const f = decodeFrame(encodeFrame({ k: 'eh', c: es.length, h: hashBytes(h) }))
      assert.deepEqual([...hashesFrom(f.h, es.length)], [...h])
      assert.throws(() => hashesFrom(f.h, es.length + 1), ProtocolError)
    }))
  })

  it('truncated CBOR of a valid frame is rejected', () => {
    const bytes = encodeFrame({ k: 'e', ...packEntries([{ ds: 'c', key: 'hits', sub: R1, value: 2n ** 70n }], lookup), end: true })
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.throws(() => unpackEntries(decodeFrame(bytes.subarray(0, cut)), lookup), ProtocolError)
    }
  })

  it('members round-trip; bad members are rejected', () => {
    const ms = [{ id: R1, addrs: ['/ip4/10.0.0.1/tcp/7778'], lastSeen: 5 }, { id: R2, addrs: [], lastSeen: 1, retiredAt: 9 }]
    assert.deepEqual(unpackMembers(packMembers(ms)), ms)
    assert.throws(() => unpackMembers([['nope', [], 1, 0]]), ProtocolError)
    assert.throws(() => unpackMembers({}), ProtocolError)
  })
})
