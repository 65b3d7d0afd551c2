// What a chaos run writes to history.json: every operation a client made
// (when it was invoked and completed, on which node, with what outcome),
// the faults with their real start and end, and the final reads. The
// checker (checker.ts) is a pure function of this, so a saved history can
// be checked again (`npm run chaos -- --check FILE`).

export const WORKLOADS = ['counters', 'items', 'ids'] as const
export type Workload = typeof WORKLOADS[number]

export type OpKind = 'inc' | 'read' | 'consistent' | 'items-add' | 'items-count' | 'items-consistent' | 'ids'

/**
 * 'ok': acknowledged (200). 'fail': certainly had no effect (connection
 * refused, a 4xx, a 503 from a read or from /ids). 'info': unknown fate
 * (a timeout, a 5xx on a write): it may or may not have taken effect.
 */
export type OpResult = 'ok' | 'fail' | 'info'

export interface Item { tenant: string, id: string }

export interface Op {
  op: OpKind
  /** 1-based node number the request went to. */
  node: number
  /** Milliseconds since the run's t0. */
  invokeMs: number
  completeMs: number
  result: OpResult
  /** Counter name (inc, read, consistent) or tenant (items-count, items-consistent). */
  key?: string
  /** What was sent: the increment (inc), the items (items-add), how many IDs were asked for (ids). */
  value?: number | Item[]
  /** What came back: a counter value or item count (reads), decimal ID strings (ids). */
  answer?: number | string[]
  /** HTTP status, when there was one. */
  status?: number
  /** Reads made after the last heal to time convergence: all reads of round k. */
  round?: number
  /** Reads made at the very end, after convergence, for the lost-ack check. */
  final?: boolean
}

export interface Fault {
  kind: string
  nodes: number[]
  /** When the fault was applied and undone (ms since t0); end is missing if it never was. */
  start: number
  end?: number
  /** For wipe: when the data dir was removed (a node's reads start a new history after it). */
  wipedAt?: number
  /** For clock: the offset in ms written to the node's clock file. */
  offsetMs?: number
  /** A fault that was planned but not applied (for example a wipe whose data had not spread). */
  skipped?: string
}

export interface History {
  version: 1
  options: { nodes: number, seconds: number, seed: number, workloads: Workload[], nemeses: string[], clients: number }
  /** Wall-clock time (epoch ms) of ms 0, to compare ID timestamps with. */
  t0: number
  ops: Op[]
  faults: Fault[]
  /** When the final fault was undone (ms since t0): convergence is timed from here. */
  lastHealMs: number
  /** Problems the harness found outside the history (bad input answers, a nemesis that failed). */
  harnessProblems: string[]
}
