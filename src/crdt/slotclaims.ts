// Node-slot claims for ID generation (SPEC §6) as a dataset of the shared
// replication path (src/crdt/dataset.ts). Pure: no I/O.
//
//   key   = slot number, "0".."1023"
//   sub   = "<claimant>/<confirmer>" (two replica ids)
//   value = the claim time (ms) when confirmer = claimant (the claim itself),
//           1 when another member confirms that claim
// An entry speaks for its confirmer (gossip checks the signer). Every entry
// of one slot sits in one digest leaf, so a slot can be read from a member
// with the per-key read protocol. The rules that decide who holds a slot
// live in src/crdt/slots.ts.
import { encode, decode } from 'cborg'
import type { DatasetKind, DatasetState } from './dataset.js'
import { hash64, leafOf, mixWord, fmix, countWords } from './digest.js'
import { isReplicaId } from '../validate.js'

export const SLOT_COUNT = 1024

export function slotSub (claimant: string, confirmer: string): string { return `${claimant}/${confirmer}` }

const isSlot = (slot: string): boolean => /^(0|[1-9][0-9]{0,3})$/.test(slot) && Number(slot) < SLOT_COUNT

/** The digest leaf of a slot's entries (all of one slot share it), computed once per valid slot. */
const slotLeaves: number[] = []
function slotLeaf (slot: string): number {
  return isSlot(slot) ? (slotLeaves[Number(slot)] ??= leafOf(`slot:${slot}`)) : leafOf(`slot:${slot}`)
}

export function splitSub (sub: string): { claimant: string, confirmer: string } {
  const slash = sub.indexOf('/')
  return { claimant: sub.slice(0, slash), confirmer: sub.slice(slash + 1) }
}

export class SlotClaims implements DatasetState {
  /** slot -> sub -> value */
  readonly bySlot = new Map<number, Map<string, bigint>>()
  /** Bumped on every change, so a watcher can tell whether to look again. */
  version = 0

  get keys (): number { return this.bySlot.size }

  forEachInLeaves (from: number, to: number, fn: (slot: string, sub: string, value: bigint) => void): void {
    for (const [slot, subs] of this.bySlot) {
      const key = String(slot)
      const leaf = slotLeaf(key)
      if (leaf < from || leaf >= to) continue
      for (const [sub, value] of subs) fn(key, sub, value)
    }
  }

  get (slot: string, sub: string): bigint { return this.bySlot.get(Number(slot))?.get(sub) ?? 0n }

  subsOf (slot: string): Array<[string, bigint]> { return [...this.bySlot.get(Number(slot)) ?? []] }

  apply (slot: string, sub: string, value: bigint): bigint | undefined {
    const n = Number(slot)
    let m = this.bySlot.get(n)
    if (m === undefined) this.bySlot.set(n, m = new Map())
    const old = m.get(sub) ?? 0n
    if (value <= old) return undefined
    m.set(sub, value)
    this.version++
    return old
  }
}

export const slotKind: DatasetKind<SlotClaims> = {
  tag: 'l',
  name: 'slots',
  isKey: isSlot,
  isSub: sub => {
    const { claimant, confirmer } = splitSub(sub)
    return isReplicaId(claimant) && isReplicaId(confirmer)
  },
  isValue: v => v > 0n && v < 2n ** 53n,
  ownerOf: (_slot, sub) => splitSub(sub).confirmer,
  subIsOrigin: false,
  leafOf: slotLeaf,
  hashOf: (slot, sub, value) => {
    const [s1, s2] = hash64(`${slot}/${sub}`, 0x51a7)
    let a = 0x1b873593
    let b = 0x85ebca6b
    const words = countWords(value)
    for (const w of [s1, s2, ...words]) {
      a = mixWord(a, w)
      b = mixWord(b, w ^ 0x27d4eb2f)
    }
    return [fmix(a ^ words.length), fmix(b ^ (words.length + 0x165667b1))]
  },
  create: () => new SlotClaims(),
  snapshot: claims => encode([...claims.bySlot].flatMap(([slot, m]) => [...m].flatMap(([sub, v]) => [slot, sub, Number(v)]))),
  restore: bytes => {
    const flat = decode(bytes) as unknown[]
    if (!Array.isArray(flat) || flat.length % 3 !== 0) throw new Error('bad slot snapshot')
    const claims = new SlotClaims()
    for (let i = 0; i < flat.length; i += 3) claims.apply(String(flat[i]), flat[i + 1] as string, BigInt(flat[i + 2] as number))
    return claims
  }
}
