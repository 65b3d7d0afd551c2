// A Map keyed by 128-bit hashes (four unsigned 32-bit words, as itemHash
// gives them), exact, with delete. For short-lived sets of item pairs on the
// write path (those being made durable): keying a Map by a string of the
// pair cost 16 % of POST /items (a string built and hashed per lookup), and
// a JavaScript Map of small integers with a linked slot object per pair
// still cost ~5 % (get, set, delete) plus an object per item for the GC.
// Here: open addressing over typed arrays, linear probing from word 1 (the
// words are uniform hash bits), deletion by backward shift (no tombstones:
// the set is filled and emptied all the time), kept under half full.

const MIN_SLOTS = 64

export class Map128<V> {
  private mask = MIN_SLOTS - 1
  private keys = new Uint32Array(MIN_SLOTS * 4)
  private used = new Uint8Array(MIN_SLOTS)
  private values: Array<V | undefined> = new Array<V | undefined>(MIN_SLOTS)
  private count = 0

  get size (): number { return this.count }

  /** The value under the hash at h[at .. at+4) (so too set and delete). */
  get (h: ArrayLike<number>, at = 0): V | undefined {
    const i = this.find(h[at] >>> 0, h[at + 1] >>> 0, h[at + 2] >>> 0, h[at + 3] >>> 0)
    return this.used[i] === 1 ? this.values[i] : undefined
  }

  set (h: ArrayLike<number>, value: V, at = 0): void {
    if (2 * (this.count + 1) > this.mask + 1) this.resize(2 * (this.mask + 1))
    const h0 = h[at] >>> 0
    const h1 = h[at + 1] >>> 0
    const h2 = h[at + 2] >>> 0
    const h3 = h[at + 3] >>> 0
    const i = this.find(h0, h1, h2, h3)
    if (this.used[i] === 0) {
      this.place(i, h0, h1, h2, h3, value)
      this.count++
    } else {
      this.values[i] = value
    }
  }

  delete (h: ArrayLike<number>, at = 0): boolean {
    let i = this.find(h[at] >>> 0, h[at + 1] >>> 0, h[at + 2] >>> 0, h[at + 3] >>> 0)
    if (this.used[i] === 0) return false
    this.count--
    // Backward shift: move later entries of the run into the hole unless their home lies after it.
    const { mask, keys } = this
    for (let j = (i + 1) & mask; this.used[j] === 1; j = (j + 1) & mask) {
      const home = keys[4 * j + 1] & mask
      const stays = i <= j ? (i < home && home <= j) : (i < home || home <= j)
      if (stays) continue
      this.place(i, keys[4 * j], keys[4 * j + 1], keys[4 * j + 2], keys[4 * j + 3], this.values[j] as V)
      i = j
    }
    this.used[i] = 0
    this.values[i] = undefined
    return true
  }

  /** The slot holding the key, or the empty slot where it belongs. */
  private find (h0: number, h1: number, h2: number, h3: number): number {
    const { mask, keys, used } = this
    for (let i = h1 & mask; ; i = (i + 1) & mask) {
      if (used[i] === 0) return i
      const k = 4 * i
      if (keys[k] === h0 && keys[k + 1] === h1 && keys[k + 2] === h2 && keys[k + 3] === h3) return i
    }
  }

  private place (i: number, h0: number, h1: number, h2: number, h3: number, value: V): void {
    const k = 4 * i
    this.keys[k] = h0
    this.keys[k + 1] = h1
    this.keys[k + 2] = h2
    this.keys[k + 3] = h3
    this.used[i] = 1
    this.values[i] = value
  }

  private resize (slots: number): void {
    const { keys, used, values } = this
    this.mask = slots - 1
    this.keys = new Uint32Array(slots * 4)
    this.used = new Uint8Array(slots)
    this.values = new Array<V | undefined>(slots)
    for (let j = 0; j < used.length; j++) {
      if (used[j] === 0) continue
      const h0 = keys[4 * j]
      const h1 = keys[4 * j + 1]
      const h2 = keys[4 * j + 2]
      const h3 = keys[4 * j + 3]
      this.place(this.find(h0, h1, h2, h3), h0, h1, h2, h3, values[j] as V)
    }
  }
}
