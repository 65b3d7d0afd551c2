// The one shape every replicated data type of countd is made of, and the
// interface a data type implements to ride the shared replication path
// (store, gossip, anti-entropy, consistent reads, digest). Pure: no I/O.
//
// Every grow-only type countd carries is a map (key, sub) -> value whose
// values only grow and merge by point-wise maximum:
//   counters  key = counter name, sub = replica id, value = that replica's count
//   items     key = tenant,       sub = item id,    value = 1 (present)
//   slots     key = slot number,  sub = claimant/confirmer, value = claim time or 1
// A data type only says how its keys and subs look, who may write an entry,
// where an entry sits in the digest tree and how it hashes, and how it keeps
// the entries in memory. Gossip, sync, store and digest never look inside.

import type { Chunk } from '../util/bytes.js'

/** One replicated unit of some dataset. `value` only grows. */
export interface Entry {
  /** Dataset tag (one ASCII letter, see DatasetKind.tag). */
  ds: string
  key: string
  sub: string
  value: bigint
}

/** In-memory state of one dataset on one replica. */
export interface DatasetState {
  /** Current value of (key, sub); 0n when absent. */
  get: (key: string, sub: string) => bigint
  /**
   * Merge one entry (point-wise max). Returns the previous value (0n when
   * new) if the entry grew here, undefined if it did not.
   */
  apply: (key: string, sub: string, value: bigint) => bigint | undefined
  /** Number of distinct keys (counters, tenants, slots). */
  readonly keys: number
  /**
   * Every (sub, value) of one key, for datasets that keep a key's entries
   * together (counters, slots): consistent reads fetch such a key from each
   * member. Datasets without it (items) are read by a full exchange.
   */
  subsOf?: (key: string) => Array<[string, bigint]>
  /**
   * fn(key, sub, value) for every entry in digest-tree leaves [from, to),
   * for datasets that hold whole entries in memory (counters): anti-entropy
   * then reads them from memory, not from the store. (1M names, 1 % changed:
   * each side read ~10,000 leaves from LevelDB, a seek and a thread-pool
   * round trip each, ~70-80 µs.) Datasets without it (items: the ids are on
   * disk only) are read from the store.
   */
  forEachInLeaves?: (from: number, to: number, fn: (key: string, sub: string, value: bigint) => void) => void
  /**
   * For datasets stored by identity (DatasetKind.identity: items), the
   * 128-bit identity of every entry in the leaves marked in `leaves` (one
   * byte per leaf), 4 words each, from memory. Anti-entropy swaps the
   * entries' fingerprints from these and then reads from the store only the
   * entries the peer lacks, by their exact keys (10M items, 1 % missing:
   * ~10 entries a leaf read as ~100,000 ranges, 70-80 µs each, per side).
   */
  identitiesInLeaves?: (leaves: Uint8Array) => Uint32Array
}

/**
 * How a dataset whose (key, sub) pairs have a 128-bit identity in memory
 * (items) is stored: under the identity, with the key and sub in the stored
 * value, so an entry known only by its identity is read by its exact key.
 * Such a dataset's entry hash (hashOf) must not depend on the value, which
 * memory does not hold (an item's value is always 1).
 */
export interface IdentityLayout {
  /** The identity of (key, sub), 4 words into `out`. */
  identityOf: (key: string, sub: string, out: Uint32Array) => Uint32Array
  /** The digest-tree leaf (leafOf) of the identity at words[at .. at+4). */
  leafOfIdentity: (words: Uint32Array, at: number) => number
  /** The entry hash (hashOf) of the identity at words[at .. at+4). */
  hashOfIdentity: (words: Uint32Array, at: number) => [number, number]
}

export interface DatasetKind<S extends DatasetState = DatasetState> {
  /** One ASCII letter, stable forever: it is in store keys and on the wire. */
  tag: string
  /** Human name for logs and metrics. */
  name: string
  /** Keys never contain '/' (store keys put the sub after the key) and never start with '#' (an identity, see IdentityLayout). */
  isKey: (key: string) => boolean
  isSub: (sub: string) => boolean
  /** Largest value accepted from the network (values are positive). */
  isValue: (value: bigint) => boolean
  /**
   * The replica whose writes an entry is (gossip accepts an entry only from
   * its owner, checked against the signed sender), or undefined when any
   * replica may write it (items: the same pair may be added anywhere).
   */
  ownerOf: (key: string, sub: string) => string | undefined
  /**
   * In gossip, the sub is always the signer (counters): it is left out of the
   * message and filled in from the signature.
   */
  subIsOrigin: boolean
  /** Digest-tree leaf (LEAF_BITS bits) of an entry. */
  leafOf: (key: string, sub: string) => number
  /** Stored by a 128-bit identity per (key, sub) instead of the key and sub (see IdentityLayout). */
  identity?: IdentityLayout
  /** 64-bit hash of an entry at a value, as two 32-bit lanes. */
  hashOf: (key: string, sub: string, value: bigint) => [number, number]
  /** A fresh, empty in-memory state. */
  create: () => S
  /**
   * The in-memory state as bytes, and back (a restart loads this instead of
   * rebuilding from every stored entry). `restore` throws on damage.
   */
  snapshot: (state: S) => Chunk | Chunk[]
  restore: (bytes: Uint8Array) => S
}
