// Who holds which node slot (SPEC §6): pure rules over the slot-claim
// dataset (src/crdt/slotclaims.ts) and the member list. No I/O, no clocks.
//
// A claim is (slot, claimant, claim time). A claimant's live claim is its
// latest one (a node that moved to another slot left its older claims
// behind). A member confirms a live claim unless it has already confirmed,
// or itself holds, another live claim on that slot; so one member never
// backs two live claimants of one slot. A claimant may issue IDs only once
// every active member (every member but itself that is not retired) has
// confirmed its claim.
//
// Why no two replica ids are ever both confirmed for one slot: each needs
// the confirmation of every active member it knows. Claimant A counts B as
// a member once it has heard of it (claims and confirmations are entries
// whose owners become members), and in one cluster their member lists share
// the members through which both joined. Such a shared member confirms only
// one of them while both claims live; and B itself holds a live claim on the
// slot, so it never confirms A (and vice versa). The limit: two clusters that
// never exchanged members can pick the same slot; merging them later can
// duplicate IDs, as with any scheme that assigns ids without coordination.
//
// Who gives way: an unconfirmed claim gives way (its claimant claims another
// slot) to a competing live claim that is older (earlier claim time, then the
// smaller replica id), or that every other member of the loser's view has
// already confirmed. A confirmed claim never gives way: IDs may exist.
//
// Slots of retired members: never reused. A retired member's claim stays in
// the data for good, so its slot stays taken: a retired id that comes back
// (an operator's mistake, a paused process) can never meet its slot held by
// another node. 1024 slots allow 1023 node replacements (a wiped data dir is
// a new replica id and takes a new slot); when they run out, /ids answers
// 503 saying so. This is the one rule we could prove safe without clocks.
import { SLOT_COUNT, splitSub, slotSub, type SlotClaims } from './slotclaims.js'

export interface SlotView {
  claims: SlotClaims
  me: string
  /** Members whose confirmation a claim needs (not me, not retired). */
  active: string[]
}

interface Claim { slot: number, claimant: string, time: bigint }

/** Every claimant's latest claim. */
export function liveClaims (claims: SlotClaims): Map<string, Claim> {
  const live = new Map<string, Claim>()
  for (const [slot, subs] of claims.bySlot) {
    for (const [sub, value] of subs) {
      const { claimant, confirmer } = splitSub(sub)
      if (claimant !== confirmer) continue
      const prev = live.get(claimant)
      if (prev === undefined || value > prev.time || (value === prev.time && slot > prev.slot)) live.set(claimant, { slot, claimant, time: value })
    }
  }
  return live
}

function older (a: Claim, b: Claim): boolean {
  return a.time < b.time || (a.time === b.time && a.claimant < b.claimant)
}

function confirmers (claims: SlotClaims, c: Claim): Set<string> {
  const out = new Set<string>([c.claimant])
  for (const sub of claims.bySlot.get(c.slot)?.keys() ?? []) {
    const { claimant, confirmer } = splitSub(sub)
    if (claimant === c.claimant) out.add(confirmer)
  }
  return out
}

/** The live claims `me` should confirm now (entries to write: sub = claimant/me, value 1). */
export function toConfirm (view: SlotView): Array<{ slot: number, sub: string }> {
  const live = liveClaims(view.claims)
  const out: Array<{ slot: number, sub: string }> = []
  for (const c of live.values()) {
    if (c.claimant === view.me) continue
    const subs = view.claims.bySlot.get(c.slot)
    if (subs?.has(slotSub(c.claimant, view.me)) === true) continue
    // Refuse while I back (or hold) another live claim on this slot.
    let backsOther = false
    for (const other of live.values()) {
      if (other.slot !== c.slot || other.claimant === c.claimant) continue
      if (other.claimant === view.me || subs?.has(slotSub(other.claimant, view.me)) === true) backsOther = true
    }
    if (!backsOther) out.push({ slot: c.slot, sub: slotSub(c.claimant, view.me) })
  }
  return out
}

export type SlotState =
  | { kind: 'none' }
  | { kind: 'claimed', slot: number, confirmed: boolean, missing: string[] }
  | { kind: 'lost', slot: number, holder: string }

/** Where `me` stands: no claim, a claim (confirmed or not), or a claim that must give way. */
export function slotState (view: SlotView): SlotState {
  const live = liveClaims(view.claims)
  const mine = live.get(view.me)
  if (mine === undefined) return { kind: 'none' }
  const backers = confirmers(view.claims, mine)
  const missing = view.active.filter(id => !backers.has(id))
  if (missing.length === 0) return { kind: 'claimed', slot: mine.slot, confirmed: true, missing }
  for (const other of live.values()) {
    if (other.slot !== mine.slot || other.claimant === view.me) continue
    const theirs = confirmers(view.claims, other)
    const backedByAllOthers = view.active.every(id => id === other.claimant || theirs.has(id))
    if (older(other, mine) || backedByAllOthers) return { kind: 'lost', slot: mine.slot, holder: other.claimant }
  }
  return { kind: 'claimed', slot: mine.slot, confirmed: false, missing }
}

/**
 * The slot to claim: the first slot nobody ever claimed, searching from a
 * point derived from the replica id (so nodes joining together rarely pick
 * the same one). undefined when all 1024 were claimed.
 */
export function freeSlot (claims: SlotClaims, me: string): number | undefined {
  let h = 0
  for (let i = 0; i < me.length; i++) h = (Math.imul(h, 31) + me.charCodeAt(i)) >>> 0
  for (let k = 0; k < SLOT_COUNT; k++) {
    const slot = (h + k) % SLOT_COUNT
    if ((claims.bySlot.get(slot)?.size ?? 0) === 0) return slot
  }
  return undefined
}
