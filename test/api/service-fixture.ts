// A CountdService for front-end tests, until the daemon's real one lands:
// counters go through a real Replica on a real Store (LevelDB, group commit,
// fsync), so durability and batching are the real thing. Items and IDs are
// IN-MEMORY FIXTURES (marked below) standing in for the items/ids issues;
// the lead switches them to the real implementation.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Store } from '../../src/store/store.js'
import { Replica } from '../../src/replica.js'
import { UnreachableError, BadInputError } from '../../src/errors.js'
import type { CountdService, ItemRef } from '../../src/service.js'

export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

export class FixtureService implements CountdService {
  /** When set, consistent reads fail as if this member could not be reached. */
  unreachable: string | undefined
  /** FIXTURE: items per tenant, in memory only. */
  private readonly items = new Map<string, Set<string>>()
  /** FIXTURE: IDs, increasing per process. */
  private lastId = 0n

  private constructor (readonly replica: Replica, private readonly store: Store, private readonly dir: string) {}

  static async open (): Promise<FixtureService> {
    const dir = mkdtempSync(join(tmpdir(), 'countd-proto-'))
    const store = await Store.open(dir)
    const replica = new Replica('fixture-replica', store)
    await replica.load()
    return new FixtureService(replica, store, dir)
  }

  get id (): string { return this.replica.id }

  async increment (name: string, by: bigint): Promise<bigint> { return await this.replica.increment(name, by) }
  async incrementMany (items: Array<[string, bigint]>): Promise<bigint[]> { return await this.replica.incrementMany(items) }
  value (name: string): bigint { return this.replica.value(name) }

  async consistentValue (name: string, timeoutMs: number): Promise<bigint> {
    if (this.unreachable !== undefined) {
      await new Promise(resolve => setTimeout(resolve, Math.min(timeoutMs, 50)))
      throw new UnreachableError(`could not read every member within ${timeoutMs} ms`, this.value(name), [this.unreachable])
    }
    return this.value(name) // a one-node cluster: the local state is everyone's
  }

  // ---- FIXTURE: items (in memory, not durable) ----
  async addItems (items: ItemRef[]): Promise<{ accepted: number, added: number }> {
    if (items.length === 0) throw new BadInputError('no items')
    let added = 0
    await Promise.resolve()
    for (const { tenant, id } of items) {
      let set = this.items.get(tenant)
      if (set === undefined) this.items.set(tenant, set = new Set())
      if (!set.has(id)) { set.add(id); added++ }
    }
    return { accepted: items.length, added }
  }

  itemCount (tenant: string): number { return this.items.get(tenant)?.size ?? 0 }

  async consistentItemCount (tenant: string, timeoutMs: number): Promise<number> {
    if (this.unreachable !== undefined) throw new UnreachableError(`could not read every member within ${timeoutMs} ms`, this.itemCount(tenant), [this.unreachable])
    return this.itemCount(tenant)
  }

  async hasItem (tenant: string, id: string): Promise<boolean> { return this.items.get(tenant)?.has(id) ?? false }

  // ---- FIXTURE: IDs ----
  async nextIds (count: number): Promise<bigint[]> {
    const ids: bigint[] = []
    for (let i = 0; i < count; i++) ids.push(++this.lastId + (1n << 40n))
    return ids
  }

  async close (): Promise<void> {
    await this.store.close()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
