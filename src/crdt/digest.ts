// A Merkle-style digest over every entry of every dataset (src/crdt/dataset.ts),
// used by anti-entropy to find what differs between two replicas in a few
// round trips with cost proportional to the difference.
//
// Every entry hashes to 64 bits (two 32-bit lanes) and sits in a leaf; both
// are the dataset's choice (a counter's entries share the leaf of its name, an
// item gets the leaf of its own hash). A node's hash is the XOR of the entry
// hashes below it. XOR makes updates O(levels): replacing an entry XORs out
// its old hash and XORs in the new one along the path to the root. The tree
// never looks inside an entry. Pure: no I/O.

/** log2 of the fan-out between levels. */
export const BITS_PER_LEVEL = 4
/** Depth of the tree: leaves = 2^(BITS_PER_LEVEL * DEPTH). */
export const DEPTH = 5
export const LEAF_BITS = BITS_PER_LEVEL * DEPTH
export const FANOUT = 1 << BITS_PER_LEVEL

/** cyrb53-style string hash: two independent 32-bit lanes. */
export function hash64 (s: string, seed = 0): [number, number] {
  let h1 = 0xdeadbeef ^ seed
  let h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i)
    h1 = Math.imul(h1 ^ ch, 2654435761)
    h2 = Math.imul(h2 ^ ch, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return [h1 >>> 0, h2 >>> 0]
}

/** Leaf index of a string (a counter name, a slot). */
export function leafOf (name: string): number {
  return hash64(name, 0x9e3779b9)[0] >>> (32 - LEAF_BITS)
}

/** How many leaves one tree node at `depth` spans (node n holds leaves [n * span, (n + 1) * span)). */
export function leavesPerNode (depth: number): number {
  return 1 << (LEAF_BITS - BITS_PER_LEVEL * depth)
}

/** Hex prefix of a tree node at `depth` (one hex digit per level): the store keeps entries under it. */
export function nodePrefix (depth: number, node: number): string {
  return depth === 0 ? '' : node.toString(16).padStart(depth, '0')
}

/** A leaf as LEAF_BITS/4 hex digits (store key component). */
export function leafHex (leaf: number): string {
  return leaf.toString(16).padStart(DEPTH, '0')
}

/** murmur3's 32-bit finaliser: full avalanche. */
export function fmix (h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** murmur3 32-bit mixing of one word into a running hash. */
export function mixWord (h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  h ^= Math.imul(k, 0x1b873593)
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

const TWO_32 = 2 ** 32

/** A count as 32-bit words, low first (any size). */
export function countWords (count: bigint): number[] {
  if (count <= BigInt(Number.MAX_SAFE_INTEGER)) {
    const n = Number(count)
    return [n % TWO_32, Math.floor(n / TWO_32)]
  }
  const words: number[] = []
  for (let c = count; c > 0n; c >>= 32n) words.push(Number(c & 0xffffffffn))
  return words
}

export class DigestTree {
  /** levels[d] holds 2^(BITS_PER_LEVEL*d) nodes as interleaved lanes [a0,b0,a1,b1,...]. */
  readonly levels: Uint32Array[] = []

  constructor () {
    for (let d = 0; d <= DEPTH; d++) this.levels.push(new Uint32Array(2 << (BITS_PER_LEVEL * d)))
  }

  /** XOR an entry hash into (or, a second time, out of) `leaf` and its ancestors. */
  toggle (leaf: number, a: number, b: number): void {
    for (let d = DEPTH; d >= 0; d--) {
      const i = (leaf >>> (BITS_PER_LEVEL * (DEPTH - d))) * 2
      const level = this.levels[d]
      level[i] ^= a
      level[i + 1] ^= b
    }
  }

  /** Record that an entry's hash changed from `old` (absent: undefined) to `now`. */
  replace (leaf: number, old: [number, number] | undefined, now: [number, number]): void {
    if (old === undefined) this.toggle(leaf, now[0], now[1])
    else this.toggle(leaf, old[0] ^ now[0], old[1] ^ now[1])
  }

  /** Hashes of the given nodes at `depth`, as interleaved lanes. */
  hashes (depth: number, nodes: number[]): Uint32Array {
    const out = new Uint32Array(nodes.length * 2)
    const level = this.levels[depth]
    for (let k = 0; k < nodes.length; k++) {
      out[2 * k] = level[2 * nodes[k]]
      out[2 * k + 1] = level[2 * nodes[k] + 1]
    }
    return out
  }

  /** Indices (into `nodes`) whose hash differs from `theirs`. */
  differing (depth: number, nodes: number[], theirs: Uint32Array): number[] {
    const mine = this.hashes(depth, nodes)
    const out: number[] = []
    for (let k = 0; k < nodes.length; k++) {
      if (mine[2 * k] !== theirs[2 * k] || mine[2 * k + 1] !== theirs[2 * k + 1]) out.push(k)
    }
    return out
  }
}

/** Children (at depth+1) of the given nodes. */
export function childrenOf (nodes: number[]): number[] {
  const out: number[] = []
  for (const n of nodes) for (let c = 0; c < FANOUT; c++) out.push(n * FANOUT + c)
  return out
}
