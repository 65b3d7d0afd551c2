// A growing set of names kept in sorted order, for paged lists
// (GET /counters, GET /tenants: `?prefix`, `?after=CURSOR`, `?limit`).
// Pure: no I/O.
//
// A node may hold 1,000,000 names and keeps creating new ones, and a page
// must be cut without stalling the event loop. One big sorted array would
// need an O(n) copy per insert (or per lazy merge); instead the names sit in
// sorted blocks of at most BLOCK_MAX names (a one-level B-tree):
// - add() appends to a small unsorted buffer (O(1));
// - before a read, the buffer (at most BUFFER_MAX names) is sorted and each
//   name inserted into its block by binary search (O(log n + BLOCK_MAX)),
//   splitting a block that grew too big;
// - names added before the first read or flush() (a replica loading its
//   data dir) are sorted in one go instead: one sort, not n inserts;
// - a page is two binary searches and a walk of `limit` names.
// Order is by UTF-16 code unit, which for the ASCII names countd allows is
// byte order: the same order as `etcdctl get --prefix` or a LevelDB scan.

const BLOCK_MAX = 1024
const BUFFER_MAX = 256

export interface PageQuery {
  /** Only names starting with this. */
  prefix?: string
  /** Only names after this one (the `next` of the previous page). */
  after?: string
  /** At most this many names (>= 1). */
  limit: number
}

export interface Page {
  names: string[]
  /** The cursor for the next page (the last name of this one), or null when this is the last page. */
  next: string | null
}

export class SortedNames {
  /** Sorted, non-empty blocks; every name of block i sorts before every name of block i+1. */
  private blocks: string[][] = []
  private buffer: string[] = []
  private count = 0
  /** Until the first read or flush(): buffer every name and sort them once. */
  private bulk = true

  /** Number of distinct names (buffered ones included once merged; duplicates are dropped at merge). */
  get size (): number {
    this.flush()
    return this.count
  }

  /** Add a name (a name already present is ignored). */
  add (name: string): void {
    this.buffer.push(name)
    if (!this.bulk && this.buffer.length >= BUFFER_MAX) this.flush()
  }

  has (name: string): boolean {
    this.flush()
    const b = this.blockFor(name)
    if (b === -1) return false
    const block = this.blocks[b]
    const i = lowerBound(block, name)
    return i < block.length && block[i] === name
  }

  /** One page of the names matching `prefix` that sort after `after`. */
  page (q: PageQuery): Page {
    this.flush()
    const prefix = q.prefix ?? ''
    const after = q.after
    // Start at the first name >= prefix and > after.
    const from = after !== undefined && after >= prefix ? after : prefix
    const strict = after !== undefined && after >= prefix
    let b = this.blockFor(from)
    if (b === -1) b = 0
    const names: string[] = []
    let i = b < this.blocks.length ? (strict ? upperBound(this.blocks[b], from) : lowerBound(this.blocks[b], from)) : 0
    for (; b < this.blocks.length; b++, i = 0) {
      const block = this.blocks[b]
      for (; i < block.length; i++) {
        const name = block[i]
        if (!name.startsWith(prefix)) return { names, next: null }
        if (names.length === q.limit) return { names, next: names[names.length - 1] }
        names.push(name)
      }
    }
    return { names, next: null }
  }

  /** Every name in order (tests, small sets). */
  all (): string[] {
    this.flush()
    return this.blocks.flat()
  }

  /**
   * Move buffered names into the blocks. The first call (or read) ends the
   * bulk phase: call it once a replica has loaded, before serving pages.
   */
  flush (): void {
    if (this.bulk) {
      this.bulk = false
      this.buildFrom(this.buffer.sort(compare))
      this.buffer = []
      return
    }
    if (this.buffer.length === 0) return
    const incoming = this.buffer.sort(compare)
    this.buffer = []
    for (const name of incoming) this.insert(name)
  }

  /** Replace the blocks with a sorted list (duplicates dropped), in half-full blocks. */
  private buildFrom (sorted: readonly string[]): void {
    const half = BLOCK_MAX >> 1
    this.blocks = []
    this.count = 0
    let block: string[] = []
    for (let i = 0; i < sorted.length; i++) {
      if (i > 0 && sorted[i] === sorted[i - 1]) continue
      if (block.length === half) {
        this.blocks.push(block)
        block = []
      }
      block.push(sorted[i])
      this.count++
    }
    if (block.length > 0) this.blocks.push(block)
  }

  private insert (name: string): void {
    if (this.blocks.length === 0) {
      this.blocks.push([name])
      this.count++
      return
    }
    let b = this.blockFor(name)
    if (b === -1) b = 0
    const block = this.blocks[b]
    const i = lowerBound(block, name)
    if (i < block.length && block[i] === name) return
    // Shift by hand: Array#splice allocates a result array on every call.
    block.push(name)
    for (let j = block.length - 1; j > i; j--) block[j] = block[j - 1]
    block[i] = name
    this.count++
    if (block.length > BLOCK_MAX) this.blocks.splice(b + 1, 0, block.splice(block.length >> 1))
  }

  /** Index of the last block whose first name is <= name; -1 if name sorts before all. */
  private blockFor (name: string): number {
    let lo = 0
    let hi = this.blocks.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.blocks[mid][0] <= name) lo = mid + 1
      else hi = mid
    }
    return lo - 1
  }
}

function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** First index whose name is >= name. */
function lowerBound (a: readonly string[], name: string): number {
  let lo = 0
  let hi = a.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (a[mid] < name) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** First index whose name is > name. */
function upperBound (a: readonly string[], name: string): number {
  let lo = 0
  let hi = a.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (a[mid] <= name) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The same paging over an array that is already sorted (small lists: members). */
export function pageOfSorted (sorted: readonly string[], q: PageQuery): Page {
  const prefix = q.prefix ?? ''
  const strict = q.after !== undefined && q.after >= prefix
  let i = strict ? upperBound(sorted, q.after as string) : lowerBound(sorted, prefix)
  const names: string[] = []
  for (; i < sorted.length && sorted[i].startsWith(prefix); i++) {
    if (names.length === q.limit) return { names, next: names[names.length - 1] }
    names.push(sorted[i])
  }
  return { names, next: null }
}
