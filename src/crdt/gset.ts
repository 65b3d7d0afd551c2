// Exact distinct items per tenant: one grow-only set (G-Set) of item ids per
// tenant, as a dataset of the shared replication path (src/crdt/dataset.ts):
// key = tenant, sub = item id, value = 1 (present). Merge is set union.
// Pure: no I/O. The ids themselves live in the store; memory holds only an
// exact index of 128-bit pair hashes (src/crdt/hashset128.ts, ~25-30 bytes
// an item) and a count per tenant, so 10,000,000 items fit in ~300 MB where
// JavaScript strings in Sets would take over 1 GB.
import { packParts, unpackParts } from '../util/bytes.js'
import type { DatasetKind, DatasetState } from './dataset.js'
import { HashSet128 } from './hashset128.js'
import { itemHash, itemLeaf, itemEntryHash } from './itemhash.js'
import { isValidItemId, isValidTenant } from '../validate.js'
import { LEAF_BITS } from './digest.js'

const scratch = new Uint32Array(4)

export class ItemSets implements DatasetState {
  constructor (
    readonly index = new HashSet128(),
    readonly counts = new Map<string, number>()
  ) {}

  /** Called with each tenant the first time it is seen (listing index). */
  onNewKey?: (tenant: string) => void

  get keys (): number { return this.counts.size }
  get items (): number { return this.index.size }

  count (tenant: string): number { return this.counts.get(tenant) ?? 0 }

  has (tenant: string, id: string): boolean {
    const h = itemHash(tenant, id, scratch)
    return this.index.has(h[0], h[1], h[2], h[3])
  }

  get (tenant: string, id: string): bigint { return this.has(tenant, id) ? 1n : 0n }

  identitiesInLeaves (leaves: Uint8Array): Uint32Array { return this.index.selectByPrefix(LEAF_BITS, leaves) }

  apply (tenant: string, id: string, _present: bigint): bigint | undefined {
    const h = itemHash(tenant, id, scratch)
    if (!this.index.add(h[0], h[1], h[2], h[3])) return undefined
    const n = this.counts.get(tenant)
    if (n === undefined) {
      this.counts.set(tenant, 1)
      this.onNewKey?.(tenant)
    } else {
      this.counts.set(tenant, n + 1)
    }
    return 0n
  }
}

export const itemKind: DatasetKind<ItemSets> = {
  tag: 's',
  name: 'items',
  isKey: isValidTenant,
  isSub: isValidItemId,
  isValue: present => present === 1n,
  // The same pair may be added on any node: nobody owns it.
  ownerOf: () => undefined,
  subIsOrigin: false,
  // Each item gets its own leaf, so a tenant's items spread over the whole
  // tree and anti-entropy finds the few missing ones of a huge set.
  leafOf: (tenant, id) => itemLeaf(itemHash(tenant, id, scratch)[0]),
  hashOf: (tenant, id) => itemEntryHash(itemHash(tenant, id, scratch)),
  // Stored under the pair hash, so anti-entropy reads exactly the items a peer lacks.
  identity: {
    identityOf: (tenant, id, out) => itemHash(tenant, id, out),
    leafOfIdentity: (words, at) => itemLeaf(words[at]),
    hashOfIdentity: (words, at) => itemEntryHash(words, at)
  },
  create: () => new ItemSets(),
  // The index's own checked format (src/crdt/hashset128.ts) as a part of its
  // own (not copied into CBOR: 160 MB at 10,000,000 items), and the counts.
  snapshot: sets => packParts({ c: [...sets.counts].flat() }, [sets.index.toChunks()]),
  restore: bytes => {
    const { fields, parts } = unpackParts(bytes)
    const c = fields.c
    const i = parts[0]
    if (parts.length !== 1 || !Array.isArray(c) || c.length % 2 !== 0) throw new Error('bad item snapshot')
    const counts = new Map<string, number>()
    let total = 0
    for (let k = 0; k < c.length; k += 2) {
      counts.set(c[k] as string, c[k + 1] as number)
      total += c[k + 1] as number
    }
    const index = HashSet128.fromBuffer(i)
    if (total !== index.size) throw new Error('item snapshot: counts do not add up to the index')
    return new ItemSets(index, counts)
  }
}
