// IDs for one node slot: strictly increasing, never more than MAX_LEAD_MS
// ahead of the clock, never repeated across restarts or a clock that went
// back. Pure logic over an injected clock and an injected durable lease.
//
// The lease: before issuing an ID at time t, the generator makes sure a
// lease >= t is durable (one fsync'd write per LEASE_STEP_MS of issuing,
// shared with other writes by the group commit, never one per ID). After a
// restart (even kill -9) it starts above the lease, so nothing issued before
// can be issued again. A clock behind the last issued time is absorbed by
// running ahead of the clock by up to MAX_LEAD_MS, then by waiting up to
// MAX_WAIT_MS; further back it refuses (IdsUnavailableError, HTTP 503).
import { IdsUnavailableError } from '../errors.js'
import { encodeId, ID_EPOCH_MS, MAX_SEQUENCE, MAX_TIME } from './snowflake.js'
import type { Clock } from './clock.js'

/** An ID's time may be at most this far ahead of the issuing node's clock (SPEC §6). */
export const MAX_LEAD_MS = 1000
/** How long one request may wait for the clock to catch up. */
export const MAX_WAIT_MS = 2000
/** Each lease covers this much issuing time. */
export const LEASE_STEP_MS = 500

export interface GeneratorStats { waits: number, refusals: number, leases: number }

export class IdGenerator {
  /** Time (ms since the ID epoch) of the last issued ID. */
  private lastMs: number
  /** Next sequence number within lastMs. */
  private seq: number
  /** IDs may be issued up to this time (ms since the ID epoch) without a new lease. */
  private leaseMs: number
  private leasing: Promise<void> | undefined
  readonly stats: GeneratorStats = { waits: 0, refusals: 0, leases: 0 }

  /**
   * `lease`: the durable lease left by the last run (ms since the ID epoch; 0
   * = none): IDs before a crash may have used times up to it, so start above.
   */
  constructor (
    readonly slot: number,
    private readonly clock: Clock,
    lease: number,
    private readonly persistLease: (untilMs: number) => Promise<void>,
    private readonly sleep: (ms: number) => Promise<void> = async ms => await new Promise(resolve => setTimeout(resolve, ms))
  ) {
    this.lastMs = lease
    this.seq = MAX_SEQUENCE + 1
    this.leaseMs = lease
  }

  /** `count` new IDs, increasing (and above every ID this slot issued before). */
  async next (count: number): Promise<bigint[]> {
    const ids: bigint[] = []
    let waited = 0
    while (ids.length < count) {
      const now = this.clock() - ID_EPOCH_MS
      // The next free (time, sequence): this millisecond if it has room, else
      // the next one; the clock's own time if that is later.
      let t = this.seq <= MAX_SEQUENCE ? this.lastMs : this.lastMs + 1
      let seq = this.seq <= MAX_SEQUENCE ? this.seq : 0
      if (now > t) {
        t = now
        seq = 0
      }
      if (t > now + MAX_LEAD_MS) {
        // The clock is behind what was issued: wait for it, or refuse.
        const behind = t - (now + MAX_LEAD_MS)
        if (behind + waited > MAX_WAIT_MS) {
          this.stats.refusals++
          throw new IdsUnavailableError(`the clock is ${t - 1 - now} ms behind the last ID issued; refusing rather than risk a duplicate (retry when the clock has caught up)`)
        }
        this.stats.waits++
        const ms = Math.min(behind, 50)
        waited += ms
        await this.sleep(ms)
        continue
      }
      this.lastMs = t
      this.seq = seq
      if (this.lastMs > MAX_TIME) throw new IdsUnavailableError('the ID time field is exhausted (year 2095)')
      if (this.lastMs >= this.leaseMs) {
        await this.renewLease(this.lastMs + LEASE_STEP_MS)
        continue
      }
      const take = Math.min(count - ids.length, MAX_SEQUENCE + 1 - this.seq)
      // One BigInt built per millisecond, then +1n per ID (the sequence is the low bits).
      let id = encodeId(this.lastMs, this.slot, this.seq)
      for (let k = 0; k < take; k++, id++) ids.push(id)
      this.seq += take
    }
    return ids
  }

  /** One lease write at a time; concurrent callers share it. */
  private async renewLease (untilMs: number): Promise<void> {
    if (this.leasing === undefined) {
      this.leasing = this.persistLease(untilMs).then(() => {
        this.leaseMs = Math.max(this.leaseMs, untilMs)
        this.stats.leases++
      }).finally(() => { this.leasing = undefined })
    }
    await this.leasing
  }
}
