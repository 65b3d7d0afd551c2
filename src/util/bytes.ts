// Typed arrays over decoded bytes without a copy where the bytes allow it,
// and a container of byte strings that are read back without copies.
import { encode, decode } from 'cborg'

/**
 * A chunk of a file made only when it is written: a large copy (10M items:
 * the item index's 160 MB) need not exist whole at once. Its length is
 * known ahead (part lengths go first); `make` is called once, in file order.
 */
export interface LazyChunk { readonly byteLength: number, make: () => Uint8Array }
export type Chunk = Uint8Array | LazyChunk

/** The bytes of a chunk, made now if it is lazy (and checked against the length it promised). */
export function chunkBytes (c: Chunk): Uint8Array {
  if (c instanceof Uint8Array) return c
  const b = c.make()
  if (b.byteLength !== c.byteLength) throw new RangeError(`a chunk of ${c.byteLength} bytes came out as ${b.byteLength} (changed while written)`)
  return b
}

/** Every chunk made and joined into one buffer (tests, small snapshots). */
export function joinChunks (chunks: Chunk[]): Buffer {
  return Buffer.concat(chunks.map(chunkBytes))
}

/** The bytes of a typed array, as a view (no copy): what CBOR and files take. */
export function bytesOf (a: Uint32Array | Float64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

type TypedArrayOf<T> = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => T

/**
 * `bytes` read as `Type` (Uint32Array, Float64Array, ...): a view when their
 * offset is aligned for it, else a copy. cborg hands every byte string it
 * decodes out in a buffer of its own (offset 0), so snapshot restores get
 * views: at 1M names the copies were ~25 MB more to allocate and free
 * while a restarted node came up.
 */
export function typedView<T> (bytes: Uint8Array, Type: TypedArrayOf<T> & { BYTES_PER_ELEMENT: number }): T {
  const width = Type.BYTES_PER_ELEMENT
  if (bytes.byteLength % width !== 0) throw new RangeError(`${bytes.byteLength} bytes are not a whole number of ${width}-byte elements`)
  const aligned = bytes.byteOffset % width === 0 ? bytes : bytes.slice()
  return new Type(aligned.buffer, aligned.byteOffset, aligned.byteLength / width)
}

/**
 * Byte strings side by side after a small CBOR header, each at an 8-byte
 * aligned offset: [u32 LE header length][header {...fields, p: [part
 * lengths]}][parts], as chunks whose concatenation is the whole (a file
 * written chunk by chunk). unpackParts hands the parts back as views of the one
 * buffer (a CBOR byte string would be copied out on decode: at 1M names a
 * 33 MB copy while a node restarts).
 */
export function packParts (fields: Record<string, unknown>, parts: Array<Chunk | Chunk[]>): Chunk[] {
  // Returned as chunks to write one after the other, and a part may itself be
  // chunks (a nested packParts): nothing is copied (at 1M names a snapshot
  // taken while running held ~60 MB less at its peak).
  const lengths = parts.map(p => Array.isArray(p) ? p.reduce((n, c) => n + c.byteLength, 0) : p.byteLength)
  const header = encode({ ...fields, p: lengths })
  const head = new Uint8Array(align8(4 + header.byteLength))
  new DataView(head.buffer).setUint32(0, header.byteLength, true)
  head.set(header, 4)
  const chunks: Chunk[] = [head]
  parts.forEach((p, i) => {
    for (const c of Array.isArray(p) ? p : [p]) if (c.byteLength > 0) chunks.push(c)
    if (align8(lengths[i]) > lengths[i]) chunks.push(new Uint8Array(align8(lengths[i]) - lengths[i]))
  })
  return chunks
}

/** packParts() read back; throws on bytes it did not write. */
export function unpackParts (bytes: Uint8Array): { fields: Record<string, unknown>, parts: Uint8Array[] } {
  if (bytes.byteLength < 4) throw new RangeError('too short for a header')
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true)
  if (4 + headerLength > bytes.byteLength) throw new RangeError('header past the end')
  const fields = decode(bytes.subarray(4, 4 + headerLength)) as Record<string, unknown>
  const lengths = fields.p
  if (!Array.isArray(lengths) || !lengths.every(n => Number.isSafeInteger(n) && n >= 0)) throw new RangeError('bad part lengths')
  const parts: Uint8Array[] = []
  let at = align8(4 + headerLength)
  for (const n of lengths as number[]) {
    if (at + n > bytes.byteLength) throw new RangeError('part past the end')
    parts.push(bytes.subarray(at, at + n))
    at += align8(n)
  }
  return { fields, parts }
}

const align8 = (n: number): number => (n + 7) & ~7

/** base64url's alphabet, as char codes. */
const B64 = Uint8Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', c => c.charCodeAt(0))

/**
 * 128 bits (words[at .. at+4), word 0's top bit first) as 22 base64url
 * characters, the last holding 2 bits. Made by one fromCharCode: the store
 * keys every item by this, and Number#toString(16) of its words was 12 % of
 * POST /items (hex is also 10 characters longer, in every key and record).
 */
export function text128 (words: ArrayLike<number>, at: number): string {
  const a = words[at]
  const b = words[at + 1]
  const c = words[at + 2]
  const d = words[at + 3]
  return String.fromCharCode(
    B64[a >>> 26], B64[(a >>> 20) & 63], B64[(a >>> 14) & 63], B64[(a >>> 8) & 63], B64[(a >>> 2) & 63],
    B64[((a & 3) << 4) | (b >>> 28)], B64[(b >>> 22) & 63], B64[(b >>> 16) & 63], B64[(b >>> 10) & 63], B64[(b >>> 4) & 63],
    B64[((b & 15) << 2) | (c >>> 30)], B64[(c >>> 24) & 63], B64[(c >>> 18) & 63], B64[(c >>> 12) & 63], B64[(c >>> 6) & 63], B64[c & 63],
    B64[d >>> 26], B64[(d >>> 20) & 63], B64[(d >>> 14) & 63], B64[(d >>> 8) & 63], B64[(d >>> 2) & 63], B64[(d & 3) << 4])
}
