// Slot claims delivered in random orders to simulated members never end with
// two confirmed holders of one slot, and with everything delivered every
// member ends up with a confirmed slot of its own.
import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { SlotClaims, slotSub } from '../../src/crdt/slotclaims.js'
import { slotState, toConfirm, freeSlot } from '../../src/crdt/slotrules.js'

interface Msg { slot: number, sub: string, value: bigint }

class Member {
  readonly claims = new SlotClaims()
  confirmedSlot: number | undefined
  constructor (readonly id: string, readonly all: string[], readonly pinned?: number) {}
  deliver (m: Msg): void { this.claims.apply(String(m.slot), m.sub, m.value) }
  /** One step of the agent's tick: returns what it writes (and applies it locally). */
  step (now: bigint): Msg[] {
    const view = { claims: this.claims, me: this.id, active: this.all.filter(x => x !== this.id) }
    const out: Msg[] = toConfirm(view).map(c => ({ slot: c.slot, sub: c.sub, value: 1n }))
    for (const m of out) this.deliver(m)
    const s = slotState(view)
    if (s.kind === 'claimed' && (s.confirmed || s.slot === this.confirmedSlot)) {
      this.confirmedSlot = s.slot
    } else if (this.confirmedSlot === undefined && (s.kind === 'none' || (s.kind === 'lost' && this.pinned === undefined))) {
      const slot = this.pinned ?? freeSlot(this.claims, this.id)!
      const m = { slot, sub: slotSub(this.id, this.id), value: now }
      this.deliver(m)
      out.push(m)
    }
    return out
  }
}

const ids = ['12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', '12D3KooWCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC', '12D3KooWDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD']

function run (n: number, pinned: boolean, order: number[]): Member[] {
  const all = ids.slice(0, n)
  // Pinned: everyone wants slot 7 (the worst case); else free choice.
  const members = all.map(id => new Member(id, all, pinned ? 7 : undefined))
  const inbox: Array<{ to: number, m: Msg }> = []
  let t = 1000n
  let k = 0
  for (let round = 0; round < 400; round++) {
    const who = order[k++ % order.length] % (n + 1)
    if (who < n) {
      for (const m of members[who].step(t++)) for (let j = 0; j < n; j++) if (j !== who) inbox.push({ to: j, m })
    } else if (inbox.length > 0) {
      const i = order[k++ % order.length] % inbox.length
      const [{ to, m }] = inbox.splice(i, 1)
      members[to].deliver(m)
    }
    // Safety after every step: no slot has two confirmed holders.
    const held = new Map<number, string>()
    for (const mem of members) {
      if (mem.confirmedSlot === undefined) continue
      const other = held.get(mem.confirmedSlot)
      assert.ok(other === undefined, `slot ${mem.confirmedSlot} confirmed for ${other} and ${mem.id}`)
      held.set(mem.confirmedSlot, mem.id)
    }
  }
  // Deliver everything and let everyone settle.
  for (let settle = 0; settle < 50; settle++) {
    while (inbox.length > 0) { const { to, m } = inbox.shift()!; members[to].deliver(m) }
    for (const [who, mem] of members.entries()) for (const m of mem.step(t++)) for (let j = 0; j < n; j++) if (j !== who) inbox.push({ to: j, m })
  }
  return members
}

describe('slot claim rules (src/crdt/slotrules.ts)', () => {
  it('never confirms two holders of one slot, whatever the delivery order; all get a slot once delivered', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 4 }), fc.array(fc.nat(1000), { minLength: 20, maxLength: 200 }), (n, order) => {
      const members = run(n, false, order)
      const slots = members.map(m => m.confirmedSlot)
      assert.ok(slots.every(s => s !== undefined), `every member has a slot: ${slots.join()}`)
      assert.equal(new Set(slots).size, n)
    }), { numRuns: 300 })
  })

  it('with everyone pinned to one slot, at most one ever holds it', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 4 }), fc.array(fc.nat(1000), { minLength: 20, maxLength: 200 }), (n, order) => {
      const members = run(n, true, order)
      assert.ok(members.filter(m => m.confirmedSlot === 7).length <= 1)
    }), { numRuns: 300 })
  })

  it('a lone node confirms itself; a claim of a member that is not active (retired) never frees its slot', () => {
    const claims = new SlotClaims()
    const me = ids[0]
    assert.deepEqual(slotState({ claims, me, active: [] }), { kind: 'none' })
    const slot = freeSlot(claims, me)!
    claims.apply(String(slot), slotSub(me, me), 5n)
    assert.deepEqual(slotState({ claims, me, active: [] }), { kind: 'claimed', slot, confirmed: true, missing: [] })
    // Another node never picks a slot anyone ever claimed.
    assert.notEqual(freeSlot(claims, ids[1]), slot)
    const all = new SlotClaims()
    for (let s = 0; s < 1024; s++) all.apply(String(s), slotSub(ids[1], ids[1]), 1n)
    assert.equal(freeSlot(all, me), undefined)
  })
})
