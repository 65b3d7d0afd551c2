// Typed arrays over decoded bytes without a copy where the bytes allow it.

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
