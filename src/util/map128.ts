// A Map keyed by 128-bit hashes (four unsigned 32-bit words, as itemHash
// gives them), exact, with delete. For short-lived sets of item pairs on the
// write path (those being made durable): keying a Map by a string of the
// pair cost 16 % of POST /items (a string built and hashed per lookup). Here
// the first 30 bits pick a small-integer key of a JavaScript Map and the
// full 128 bits are compared.

interface Slot<V> {
  h0: number
  h1: number
  h2: number
  h3: number
  value: V
  next: Slot<V> | undefined
}

export class Map128<V> {
  private readonly slots = new Map<number, Slot<V>>()
  private count = 0

  get size (): number { return this.count }

  get (h: ArrayLike<number>): V | undefined {
    for (let s = this.slots.get(h[0] >>> 2); s !== undefined; s = s.next) {
      if (s.h0 === h[0] && s.h1 === h[1] && s.h2 === h[2] && s.h3 === h[3]) return s.value
    }
    return undefined
  }

  set (h: ArrayLike<number>, value: V): void {
    const key = h[0] >>> 2
    const head = this.slots.get(key)
    for (let s = head; s !== undefined; s = s.next) {
      if (s.h0 === h[0] && s.h1 === h[1] && s.h2 === h[2] && s.h3 === h[3]) {
        s.value = value
        return
      }
    }
    this.slots.set(key, { h0: h[0], h1: h[1], h2: h[2], h3: h[3], value, next: head })
    this.count++
  }

  delete (h: ArrayLike<number>): boolean {
    const key = h[0] >>> 2
    let prev: Slot<V> | undefined
    for (let s = this.slots.get(key); s !== undefined; prev = s, s = s.next) {
      if (s.h0 !== h[0] || s.h1 !== h[1] || s.h2 !== h[2] || s.h3 !== h[3]) continue
      if (prev !== undefined) prev.next = s.next
      else if (s.next !== undefined) this.slots.set(key, s.next)
      else this.slots.delete(key)
      this.count--
      return true
    }
    return false
  }
}
