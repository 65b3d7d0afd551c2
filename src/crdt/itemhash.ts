// The 128-bit identity of an item pair (tenant, id), used by the in-memory
// exact index (hashset128.ts) and by the anti-entropy digest of item sets.
//
// Hash: MurmurHash3_x86_128, seed 0, over the UTF-8 bytes of
//   tenant + "\u0000" + id
// The separator is unambiguous: a tenant is [A-Za-z0-9._~-]{1,200} and an id
// has no control characters, so neither can contain NUL and the byte string
// determines the pair. Being the standard algorithm over the bytes the store
// keeps, any other implementation (another language, a reader of LevelDB keys)
// gets the same four words; the tests check it against published vectors.
//
// Why this one (scripts/bench/itemindex.ts, 1,000,000 pairs `tenant-<k>`,
// `item-<n>`, on the shared 2-core dev box at load 2-4, 2026-11-23; each figure
// includes ~55 ns of building the id string):
//   - murmur3 x86_128 in JS (Math.imul), UTF-8 bytes:    ~150 ns/pair  (chosen)
//   - same over the UTF-16 code units of the joined pair: ~300 ns/pair  (twice
//     the bytes for ASCII ids, a concatenation, and ties the hash to JS strings)
//   - node:crypto md5, one-shot crypto.hash:            ~1,700 ns/pair
//   - node:crypto sha256, one-shot crypto.hash:         ~1,600-2,300 ns/pair
// The crypto calls pay a C++ crossing and a Buffer per pair, which alone would
// eat the per-item budget at 150,000 items/s; murmur3 leaves room for the
// table insert (the pair must cost well under 1 µs in memory).
//
// Collisions: for n random pairs the chance that any two share a 128-bit
// hash is about n^2 / 2^129: 1.5e-21 at n = 10^9, 1.5e-25 at 10^7, below the
// 1e-20 the spec asks for. This is for non-adversarial ids: murmur3 is not a
// cryptographic hash and seed-independent collisions can be constructed, so a
// producer who deliberately crafts two colliding ids could make the second
// count as a duplicate. If tenants are mutually untrusted, verify the id in
// the store on a hash hit (the ids live in LevelDB) before answering
// "not new".
//
// Word 2 and 3 are never both zero (a hash with both zero has word 3 set to 1,
// deterministically): the index uses that as its empty-slot marker. The
// change merges two hashes out of 2^128 and does not affect the figures above.

import { LEAF_BITS } from './digest.js'

/** Encoded pair bytes: the tenant and id are at most 200 + 256 bytes by the spec; grows if asked more. */
let scratch = new Uint8Array(1024)
let scratchView = new DataView(scratch.buffer)
let scratchBuf = Buffer.from(scratch.buffer)

function ensureScratch (bytes: number): void {
  if (bytes <= scratch.length) return
  let size = scratch.length
  while (size < bytes) size *= 2
  scratch = new Uint8Array(size)
  scratchView = new DataView(scratch.buffer)
  scratchBuf = Buffer.from(scratch.buffer)
}

/**
 * Writes the UTF-8 bytes of tenant + NUL + id into the scratch buffer, returns the length.
 * ASCII (the common case) is copied by a plain loop; anything else goes
 * through Buffer#write, which encodes lone surrogates as U+FFFD exactly like
 * the utf8 encoding the store uses for keys.
 */
function encodePair (tenant: string, id: string): number {
  const tl = tenant.length
  const il = id.length
  ensureScratch((tl + il) * 3 + 1)
  const buf = scratch
  let n = 0
  let ascii = true
  for (let i = 0; i < tl; i++) {
    const c = tenant.charCodeAt(i)
    if (c >= 0x80) { ascii = false; break }
    buf[n++] = c
  }
  if (!ascii) n = scratchBuf.write(tenant, 0, 'utf8')
  buf[n++] = 0
  const idStart = n
  for (let i = 0; i < il; i++) {
    const c = id.charCodeAt(i)
    if (c >= 0x80) return idStart + scratchBuf.write(id, idStart, 'utf8')
    buf[n++] = c
  }
  return n
}

const C1 = 0x239b961b
const C2 = 0xab0e9789
const C3 = 0x38b34ae5
const C4 = 0xa1e38b93

function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

/**
 * MurmurHash3_x86_128 of bytes[0, len) with the given seed, into out[0..3]
 * (h1..h4 of the reference C code, as unsigned 32-bit numbers).
 */
function murmur3x86128Into (bytes: Uint8Array, view: DataView, len: number, seed: number, out: Uint32Array): Uint32Array {
  let h1 = seed | 0
  let h2 = h1
  let h3 = h1
  let h4 = h1
  const blocks = len & ~15
  for (let i = 0; i < blocks; i += 16) {
    let k1 = view.getUint32(i, true)
    let k2 = view.getUint32(i + 4, true)
    let k3 = view.getUint32(i + 8, true)
    let k4 = view.getUint32(i + 12, true)

    k1 = Math.imul(k1, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2); h1 ^= k1
    h1 = (h1 << 19) | (h1 >>> 13); h1 = (h1 + h2) | 0; h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0

    k2 = Math.imul(k2, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3); h2 ^= k2
    h2 = (h2 << 17) | (h2 >>> 15); h2 = (h2 + h3) | 0; h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0

    k3 = Math.imul(k3, C3); k3 = (k3 << 17) | (k3 >>> 15); k3 = Math.imul(k3, C4); h3 ^= k3
    h3 = (h3 << 15) | (h3 >>> 17); h3 = (h3 + h4) | 0; h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0

    k4 = Math.imul(k4, C4); k4 = (k4 << 18) | (k4 >>> 14); k4 = Math.imul(k4, C1); h4 ^= k4
    h4 = (h4 << 13) | (h4 >>> 19); h4 = (h4 + h1) | 0; h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0
  }

  const tail = len & 15
  if (tail > 0) {
    let k1 = 0
    let k2 = 0
    let k3 = 0
    let k4 = 0
    const t = blocks
    /* eslint-disable no-fallthrough */
    switch (tail) {
      case 15: k4 ^= bytes[t + 14] << 16
      case 14: k4 ^= bytes[t + 13] << 8
      case 13: k4 ^= bytes[t + 12]
        k4 = Math.imul(k4, C4); k4 = (k4 << 18) | (k4 >>> 14); k4 = Math.imul(k4, C1); h4 ^= k4
      case 12: k3 ^= bytes[t + 11] << 24
      case 11: k3 ^= bytes[t + 10] << 16
      case 10: k3 ^= bytes[t + 9] << 8
      case 9: k3 ^= bytes[t + 8]
        k3 = Math.imul(k3, C3); k3 = (k3 << 17) | (k3 >>> 15); k3 = Math.imul(k3, C4); h3 ^= k3
      case 8: k2 ^= bytes[t + 7] << 24
      case 7: k2 ^= bytes[t + 6] << 16
      case 6: k2 ^= bytes[t + 5] << 8
      case 5: k2 ^= bytes[t + 4]
        k2 = Math.imul(k2, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3); h2 ^= k2
      case 4: k1 ^= bytes[t + 3] << 24
      case 3: k1 ^= bytes[t + 2] << 16
      case 2: k1 ^= bytes[t + 1] << 8
      case 1: k1 ^= bytes[t]
        k1 = Math.imul(k1, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2); h1 ^= k1
    }
    /* eslint-enable no-fallthrough */
  }

  h1 ^= len; h2 ^= len; h3 ^= len; h4 ^= len
  h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0
  h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0
  h1 = fmix32(h1); h2 = fmix32(h2); h3 = fmix32(h3); h4 = fmix32(h4)
  h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0
  h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0

  // Uint32Array stores the low 32 bits, so the signed intermediates land unsigned.
  out[0] = h1
  out[1] = h2
  out[2] = h3
  out[3] = h4
  return out
}

/** MurmurHash3_x86_128 of a byte string (the reference form; pairs use itemHash). */
export function murmur3x86128 (bytes: Uint8Array, seed = 0, out: Uint32Array = new Uint32Array(4)): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return murmur3x86128Into(bytes, view, bytes.length, seed, out)
}

/**
 * The 128-bit hash of the pair (tenant, id) as four unsigned 32-bit words in
 * `out` (pass a reused Uint32Array(4) on hot paths: no allocation then).
 * Words 2 and 3 are never both zero.
 */
export function itemHash (tenant: string, id: string, out: Uint32Array = new Uint32Array(4)): Uint32Array {
  // The replication path asks for the hash of the same pair several times in
  // a row (its leaf, its digest hash, the index): answer repeats from the last.
  if (id === lastId && tenant === lastTenant) {
    out.set(last)
    return out
  }
  const len = encodePair(tenant, id)
  murmur3x86128Into(scratch, scratchView, len, 0, out)
  if (out[2] === 0 && out[3] === 0) out[3] = 1
  last.set(out)
  lastTenant = tenant
  lastId = id
  return out
}

const last = new Uint32Array(4)
let lastTenant: string | undefined
let lastId: string | undefined

/** The UTF-8 bytes the hash is taken over (tenant, NUL, id): for tests and other implementations. */
export function pairBytes (tenant: string, id: string): Uint8Array {
  return Buffer.concat([Buffer.from(tenant, 'utf8'), Buffer.from([0]), Buffer.from(id, 'utf8')])
}

/** Leaf of the anti-entropy digest tree an item belongs to: the top LEAF_BITS (20) bits of word 0. */
export function itemLeaf (h0: number): number {
  return h0 >>> (32 - LEAF_BITS)
}

/** The item's 64-bit entry hash for the digest (XORed into its leaf): words 2 and 3 (of the hash at h[at..at+4)). */
export function itemEntryHash (h: Uint32Array, at = 0): [number, number] {
  return [h[at + 2], h[at + 3]]
}
