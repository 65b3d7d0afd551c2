// The ID service of one node: takes part in slot claims (claims a slot,
// confirms other members' claims) through the slot dataset of the shared
// replication path, and issues IDs once its own claim is confirmed by every
// active member (src/crdt/slotrules.ts says who holds what and why that is
// safe). It watches the replicated claims with a short timer: the data is
// tiny, and a timer needs no hook in the replication path.
import type { Logger } from 'pino'
import type { Replica } from '../replica.js'
import { slotKind, slotSub } from '../crdt/slotclaims.js'
import { slotState, toConfirm, freeSlot, type SlotState } from '../crdt/slotrules.js'
import { IdGenerator } from './generator.js'
import { ID_EPOCH_MS } from './snowflake.js'
import type { Clock } from './clock.js'
import { IdsUnavailableError } from '../errors.js'
import { metrics } from '../metrics.js'

const TICK_MS = 100
/** meta key: the ID lease (ms since the ID epoch). */
const LEASE_KEY = 'idLease'
/** meta key: the slot whose claim was confirmed (it never gives way afterwards). */
const CONFIRMED_KEY = 'idSlot'

export interface IdAgentOptions {
  /** --node-slot: claim exactly this slot. */
  pinnedSlot?: number
  clock: Clock
  log: Logger
}

export class IdAgent {
  private timer: NodeJS.Timeout | undefined
  private generator: IdGenerator | undefined
  private confirmedSlot: number | undefined
  private lease = 0
  private state: SlotState = { kind: 'none' }
  private busy = false
  private lastProblem = ''

  constructor (private readonly replica: Replica, private readonly opts: IdAgentOptions) {}

  async start (): Promise<void> {
    this.lease = Number(await this.replica.meta(LEASE_KEY) ?? 0)
    const confirmed = await this.replica.meta(CONFIRMED_KEY)
    if (confirmed !== undefined) this.confirmedSlot = Number(confirmed)
    this.timer = setInterval(() => { void this.tick() }, TICK_MS)
    this.timer.unref()
    await this.tick()
  }

  stop (): void { clearInterval(this.timer) }

  /** For /status and metrics. */
  get slot (): number | undefined { return this.generator?.slot }

  async next (count: number): Promise<bigint[]> {
    if (this.generator === undefined) await this.tick()
    const g = this.generator
    if (g === undefined) throw new IdsUnavailableError(this.whyNot())
    try {
      const ids = await g.next(count)
      metrics.idsIssued.inc(ids.length)
      return ids
    } catch (err) {
      metrics.idRefusals.inc()
      throw err
    } finally {
      metrics.idClockWaits.set(g.stats.waits)
    }
  }

  private whyNot (): string {
    const s = this.state
    if (s.kind === 'claimed' && !s.confirmed) return `node slot ${s.slot} is not yet confirmed by every member (waiting for ${s.missing.length}: ${s.missing.slice(0, 3).join(', ')}${s.missing.length > 3 ? ', ...' : ''}); IDs are issued once it is`
    if (s.kind === 'lost') return `node slot ${s.slot} is held by ${s.holder}; ${this.opts.pinnedSlot !== undefined ? 'pick another --node-slot' : 'claiming another'}`
    return this.lastProblem !== '' ? this.lastProblem : 'no node slot claimed yet'
  }

  /** Confirm others' claims, claim or re-claim a slot, and start issuing once confirmed. */
  private async tick (): Promise<void> {
    if (this.busy || !this.replica.writable()) return
    this.busy = true
    try {
      const view = { claims: this.replica.slots, me: this.replica.id, active: this.replica.members.active().map(m => m.id) }
      const confirms = toConfirm(view)
      if (confirms.length > 0) {
        await this.replica.writeOwn(confirms.map(c => this.replica.placed({ ds: slotKind.tag, key: String(c.slot), sub: c.sub, value: 1n })), () => {})
      }
      this.state = slotState(view)
      const s = this.state
      if (s.kind === 'claimed' && (s.confirmed || s.slot === this.confirmedSlot)) {
        await this.issueFrom(s.slot)
        return
      }
      if (this.generator !== undefined) return // confirmed before: never gives way
      if (s.kind === 'none' || (s.kind === 'lost' && this.opts.pinnedSlot === undefined)) await this.claim()
    } catch (err: any) {
      this.lastProblem = `slot claim failed: ${String(err.message)}`
      this.opts.log.debug({ err: err.message }, 'id slot tick failed')
    } finally {
      this.busy = false
    }
  }

  private async claim (): Promise<void> {
    const slot = this.opts.pinnedSlot ?? freeSlot(this.replica.slots, this.replica.id)
    if (slot === undefined) {
      this.lastProblem = 'all 1024 node slots have been claimed (each replaced node takes one); IDs cannot be issued'
      return
    }
    // A claim's time only orders competing claims; a later claim of ours must be newer than our earlier ones.
    let time = BigInt(Math.max(1, Date.now()))
    for (const subs of this.replica.slots.bySlot.values()) {
      const mine = subs.get(slotSub(this.replica.id, this.replica.id))
      if (mine !== undefined && mine >= time) time = mine + 1n
    }
    this.opts.log.info({ slot }, 'claiming node slot for IDs')
    await this.replica.writeOwn([this.replica.placed({ ds: slotKind.tag, key: String(slot), sub: slotSub(this.replica.id, this.replica.id), value: time })], () => {})
  }

  private async issueFrom (slot: number): Promise<void> {
    if (this.generator?.slot === slot) return
    if (this.confirmedSlot !== slot) {
      await this.replica.persistMeta(CONFIRMED_KEY, String(slot))
      this.confirmedSlot = slot
    }
    this.generator = new IdGenerator(slot, this.opts.clock, this.lease, async until => {
      await this.replica.persistMeta(LEASE_KEY, String(until))
      this.lease = until
    })
    metrics.idSlot.set(slot)
    this.opts.log.info({ slot, idEpoch: new Date(ID_EPOCH_MS).toISOString() }, 'node slot confirmed by every member: issuing IDs')
  }
}
