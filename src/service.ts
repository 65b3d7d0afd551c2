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
