// The one interface every front end (HTTP, Redis protocol, gRPC) talks to.
// The daemon implements it by composing the replica (local data, durable
// writes) with the network (consistent reads); front ends never see either.
// Failures are the classes of src/errors.ts (each with a stable `code`).

export interface ItemRef { tenant: string, id: string }

export interface CountdService {
  /** This node's replica id (libp2p peer id). */
  readonly id: string
  /** Add `by` (1..2^53-1) to counter `name`; resolves with the new local value once durable. */
  increment: (name: string, by: bigint) => Promise<bigint>
  /** Several increments, all-or-nothing, one durable commit; new local values in order. */
  incrementMany: (items: Array<[string, bigint]>) => Promise<bigint[]>
  /** This replica's value of `name` (0n if unknown). */
  value: (name: string) => bigint
  /** Value with every member's state merged; throws UnreachableError (503) when some member cannot be read in time. */
  consistentValue: (name: string, timeoutMs: number) => Promise<bigint>
  /** Add items (all-or-nothing, durable before resolving); `added` = pairs new to this replica. */
  addItems: (items: ItemRef[]) => Promise<{ accepted: number, added: number }>
  /** Distinct items of `tenant` on this replica. */
  itemCount: (tenant: string) => number
  /** Distinct items of `tenant` with every member's state merged; throws UnreachableError. */
  consistentItemCount: (tenant: string, timeoutMs: number) => Promise<number>
  hasItem: (tenant: string, id: string) => Promise<boolean>
  /** `count` (1..10000) cluster-unique, increasing 64-bit IDs; throws IdsUnavailableError (503). */
  nextIds: (count: number) => Promise<bigint[]>
}

// ---- the implementation over the replica ----

import type { Replica } from './replica.js'
import { counterKind } from './crdt/gcounter.js'
import { UnreachableError, NotJoinedError, BadInputError } from './errors.js'
import { isValidItemId, isValidTenant, MAX_ITEMS, MAX_IDS } from './validate.js'


function checkTenant (tenant: unknown): string {
  if (typeof tenant !== 'string' || !isValidTenant(tenant)) throw new BadInputError('tenant must be 1-200 characters of A-Z a-z 0-9 . _ ~ -')
  return tenant
}

/** One item of a batch; `index` names it in the error. */
function checkItem (item: unknown, index?: number): void {
  const at = index === undefined ? '' : `item ${index}: `
  const extra = index === undefined ? {} : { index }
  if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new BadInputError(`${at}must be an object {"id": "...", "tenant": "..."}`, extra)
  const { tenant, id } = item as { tenant?: unknown, id?: unknown }
  if (typeof tenant !== 'string' || !isValidTenant(tenant)) throw new BadInputError(`${at}tenant must be 1-200 characters of A-Z a-z 0-9 . _ ~ -`, extra)
  if (typeof id !== 'string' || !isValidItemId(id)) throw new BadInputError(`${at}id must be a string of 1-256 bytes of UTF-8 without control characters`, extra)
  // Other fields are ignored (an event may carry its time, its source...),
  // but not nested ones (SPEC §5: extra nesting is 400): an object or array
  // beside the pair is more likely a mis-shaped item than an event's field.
  for (const v of Object.values(item)) {
    if (v !== null && typeof v === 'object') throw new BadInputError(`${at}a field is an object or array: an item is {"id": "...", "tenant": "..."}, other fields flat`, extra)
  }
}
import { JOIN_WAIT_MS } from './membership.js'

/** What consistent reads need from the network (the daemon passes the real Network). */
export interface ClusterReads {
  /** Read one key of a dataset from every active member; returns the unreachable ones. */
  consistentRead: (tag: string, key: string, timeoutMs: number) => Promise<string[]>
  /** A full anti-entropy exchange with every active member; returns the unreachable ones. */
  consistentSync: (timeoutMs: number) => Promise<string[]>
}

/** What IDs need: the node's ID agent (src/ids/agent.ts). */
export interface IdSource { next: (count: number) => Promise<bigint[]> }


export class ReplicaService implements CountdService {
  constructor (protected readonly replica: Replica, private readonly cluster: ClusterReads, private readonly ids: IdSource) {}

  get id (): string { return this.replica.id }

  // The replica's async methods already turn every failure into a rejection: passed on as they are.
  increment (name: string, by: bigint): Promise<bigint> { return this.replica.increment(name, by) }

  incrementMany (items: Array<[string, bigint]>): Promise<bigint[]> { return this.replica.incrementMany(items) }

  value (name: string): bigint { return this.replica.value(name) }

  async consistentValue (name: string, timeoutMs: number): Promise<bigint> {
    await this.joined(timeoutMs, () => this.replica.value(name))
    const unreachable = await this.cluster.consistentRead(counterKind.tag, name, timeoutMs)
    const value = this.replica.value(name)
    if (unreachable.length > 0) throw new UnreachableError(`could not reach ${unreachable.length} member(s) in time`, value, unreachable)
    return value
  }

  async addItems (items: ItemRef[]): Promise<{ accepted: number, added: number }> {
    if (items.length < 1 || items.length > MAX_ITEMS) throw new BadInputError(`send 1-${MAX_ITEMS} items`)
    items.forEach((item, index) => { checkItem(item, index) })
    return await this.replica.addItems(items)
  }

  itemCount (tenant: string): number { return this.replica.items.count(checkTenant(tenant)) }

  async consistentItemCount (tenant: string, timeoutMs: number): Promise<number> {
    checkTenant(tenant)
    await this.joined(timeoutMs, () => this.replica.items.count(tenant))
    const unreachable = await this.cluster.consistentSync(timeoutMs)
    const count = this.replica.items.count(tenant)
    if (unreachable.length > 0) throw new UnreachableError(`could not reach ${unreachable.length} member(s) in time`, count, unreachable)
    return count
  }

  async hasItem (tenant: string, id: string): Promise<boolean> {
    checkItem({ tenant, id })
    return this.replica.items.has(tenant, id)
  }

  async nextIds (count: number): Promise<bigint[]> {
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_IDS) throw new BadInputError(`count must be a whole number from 1 to ${MAX_IDS}`)
    return await this.ids.next(count)
  }

  /** A node that has not joined cannot know every member: no consistent read yet. */
  private async joined (timeoutMs: number, bestGuess: () => bigint | number): Promise<void> {
    if (!await this.replica.gate.whenWritable(Math.min(timeoutMs, JOIN_WAIT_MS))) {
      throw new UnreachableError(new NotJoinedError().message, bestGuess(), [])
    }
  }
}
