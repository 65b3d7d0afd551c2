// The chaos checker: SPEC §4 (counters, and items read as "distinct
// acknowledged items") and SPEC §6 (IDs), as a pure function of a history.
// Nothing here talks to a node, so a saved history.json gives the same
// verdict when checked again.
import type { Fault, History, Item, Op } from './history.js'

/** Convergence must happen within this long after the last heal (SPEC §4.4). */
export const CONVERGE_WITHIN_MS = 5000
/** An ID's time may be at most this far ahead of the moment it was answered (SPEC §6). */
export const ID_AHEAD_MS = 1000
/** ID time origin (SPEC §6): 2026-01-01T00:00:00.000Z. */
export const ID_EPOCH_MS = Date.UTC(2026, 0, 1)

export interface Verdict {
  ok: boolean
  problems: string[]
  convergeMs: number | undefined
  stats: Record<string, number | string>
}

/** Decode an ID (SPEC §6): 41 bits of ms since 2026-01-01 | 10 bits slot | 12 bits sequence. */
export function decodeId (id: string): { ms: number, slot: number, sequence: number } {
  const v = BigInt(id)
  return { ms: Number(v >> 22n) + ID_EPOCH_MS, slot: Number((v >> 12n) & 0x3ffn), sequence: Number(v & 0xfffn) }
}

export function check (h: History): Verdict {
  const problems: string[] = [...h.harnessProblems]
  const stats: Record<string, number | string> = {}
  const epochOf = wipeEpochs(h.faults)
  const partitions = h.faults.filter(f => f.kind === 'partition' && f.skipped === undefined)
  const writes = h.ops.filter(o => o.op === 'inc' || o.op === 'items-add' || o.op === 'ids')
  stats.acked_ops = writes.filter(o => o.result === 'ok').length
  stats.unknown_ops = writes.filter(o => o.result === 'info').length
  stats.failed_ops = writes.filter(o => o.result === 'fail').length

  problems.push(...unexpectedAnswers(h.ops))

  const convergeTimes: number[] = []
  let neverConverged = false
  const workloads = h.options.workloads
  // Counters and items keep the same promises (SPEC §4); their stats differ by prefix only.
  const growing = [
    { workload: 'counters', what: 'counter', ledger: counterLedger, reads: { read: 'read', consistent: 'consistent' }, prefix: '' },
    { workload: 'items', what: 'items', ledger: itemLedger, reads: { read: 'items-count', consistent: 'items-consistent' }, prefix: 'items_' }
  ] as const
  for (const g of growing) {
    if (!workloads.includes(g.workload)) continue
    const r = checkGrowing(h, g.what, g.ledger(h.ops), g.reads, epochOf, partitions, problems)
    stats[`${g.prefix}acked`] = r.acked
    stats[`${g.prefix}consistent_ok`] = r.consistentOk
    stats[`${g.prefix}consistent_503`] = r.consistent503
    if (r.convergeMs === undefined) neverConverged = true
    else convergeTimes.push(r.convergeMs)
  }
  if (workloads.includes('ids')) Object.assign(stats, checkIds(h, problems))

  const convergeMs = neverConverged ? undefined : Math.max(0, ...convergeTimes)
  if (neverConverged) problems.push(`convergence: nodes did not agree on every acked write within ${CONVERGE_WITHIN_MS} ms of the last heal`)
  stats.lost = problems.filter(p => p.startsWith('lost')).length
  stats.invented = problems.filter(p => p.startsWith('invented')).length
  return { ok: problems.length === 0, problems, convergeMs, stats }
}

/** The verdict line both a live run and `--check` print (field order is relied on by tests and people). */
export function verdictLine (h: History, v: Verdict, out: string): string {
  const o = h.options
  const s = v.stats
  const fields = [
    v.ok ? 'PASS' : 'FAIL', `nodes=${o.nodes}`, `seed=${o.seed}`, `seconds=${o.seconds}`,
    `acked_ops=${s.acked_ops}`, `acked=${s.acked ?? 0}`, `unknown_ops=${s.unknown_ops}`, `failed_ops=${s.failed_ops}`,
    `faults=${h.faults.filter(f => f.skipped === undefined).length}`,
    `consistent_ok=${s.consistent_ok ?? 0}`, `consistent_503=${s.consistent_503 ?? 0}`,
    `lost=${s.lost}`, `invented=${s.invented}`, `problems=${v.problems.length}`, `converge_ms=${v.convergeMs ?? 'never'}`,
    `workload=${o.workloads.join(',')}`
  ]
  if (o.workloads.includes('items')) fields.push(`items_acked=${s.items_acked}`, `items_consistent_ok=${s.items_consistent_ok}`, `items_consistent_503=${s.items_consistent_503}`)
  if (o.workloads.includes('ids')) fields.push(`ids_ok=${s.ids_ok}`, `ids_503=${s.ids_503}`, `dup_ids=${s.dup_ids}`)
  fields.push(`out=${out}`)
  return fields.join(' ')
}

/**
 * The harness sends only well-formed requests, so a 4xx or a 500 means a
 * harness or server bug (a 503, 507 or a timeout is a fault doing its
 * work). One line per kind of request and status, not one per request.
 */
function unexpectedAnswers (ops: Op[]): string[] {
  const seen = new Map<string, { count: number, first: Op }>()
  for (const o of ops) {
    if (o.status === undefined || !((o.status >= 400 && o.status < 500) || o.status === 500)) continue
    const key = `${o.op} ${o.status}`
    const s = seen.get(key)
    if (s === undefined) seen.set(key, { count: 1, first: o })
    else s.count++
  }
  return [...seen].map(([key, s]) => `unexpected answer: ${s.count} ${key.split(' ')[0]} requests answered ${key.split(' ')[1]} (first: n${s.first.node} at ${s.first.invokeMs} ms)`)
}

// ---- wipes: a wiped node starts a new history ----

/** epochOf(node, t): how many times the node's data dir was wiped before t. */
function wipeEpochs (faults: Fault[]): (node: number, t: number) => number {
  const wipes = new Map<number, number[]>()
  for (const f of faults) {
    if (f.kind !== 'wipe' || f.wipedAt === undefined) continue
    for (const n of f.nodes) wipes.set(n, [...(wipes.get(n) ?? []), f.wipedAt])
  }
  return (node, t) => (wipes.get(node) ?? []).filter(w => w < t).length
}

// ---- counters and items: a grow-only number per key ----

/**
 * Per key: when each unit that could be counted was first sent, and when it
 * was first acknowledged. For counters a unit is one increment of `by`
 * (weight `by`); for items it is a distinct (tenant, id) pair (weight 1,
 * counted once however often it was sent).
 */
interface Ledger {
  keys: string[]
  /** Sorted [time, weight] of first sends per key. */
  sent: Map<string, Array<[number, number]>>
  /** Sorted [time, weight] of first acks per key. */
  acked: Map<string, Array<[number, number]>>
}

function sortLedger (m: Map<string, Array<[number, number]>>): void {
  for (const xs of m.values()) xs.sort((a, b) => a[0] - b[0])
}

function counterLedger (ops: Op[]): Ledger {
  const sent = new Map<string, Array<[number, number]>>()
  const acked = new Map<string, Array<[number, number]>>()
  for (const o of ops) {
    if (o.op !== 'inc' || o.key === undefined) continue
    const by = o.value as number
    push(sent, o.key, [o.invokeMs, by])
    if (o.result === 'ok') push(acked, o.key, [o.completeMs, by])
  }
  sortLedger(sent)
  sortLedger(acked)
  return { keys: [...sent.keys()], sent, acked }
}

function itemLedger (ops: Op[]): Ledger {
  const firstSent = new Map<string, Map<string, number>>()
  const firstAck = new Map<string, Map<string, number>>()
  const note = (m: Map<string, Map<string, number>>, it: Item, t: number): void => {
    let per = m.get(it.tenant)
    if (per === undefined) m.set(it.tenant, per = new Map())
    const prev = per.get(it.id)
    if (prev === undefined || t < prev) per.set(it.id, t)
  }
  for (const o of ops) {
    if (o.op !== 'items-add') continue
    for (const it of o.value as Item[]) {
      note(firstSent, it, o.invokeMs)
      if (o.result === 'ok') note(firstAck, it, o.completeMs)
    }
  }
  const flatten = (m: Map<string, Map<string, number>>): Map<string, Array<[number, number]>> => {
    const out = new Map<string, Array<[number, number]>>()
    for (const [tenant, per] of m) out.set(tenant, [...per.values()].map(t => [t, 1] as [number, number]))
    sortLedger(out)
    return out
  }
  return { keys: [...firstSent.keys()], sent: flatten(firstSent), acked: flatten(firstAck) }
}

function push<K, V> (m: Map<K, V[]>, k: K, v: V): void {
  const xs = m.get(k)
  if (xs === undefined) m.set(k, [v])
  else xs.push(v)
}

/** Total weight of entries at or before t (entries sorted by time). */
function weightUpTo (xs: Array<[number, number]> | undefined, t: number, strictlyBefore = false): number {
  let sum = 0
  for (const [at, w] of xs ?? []) {
    if (strictlyBefore ? at >= t : at > t) break
    sum += w
  }
  return sum
}

function checkGrowing (
  h: History,
  what: 'counter' | 'items',
  ledger: Ledger,
  kinds: { read: Op['op'], consistent: Op['op'] },
  epochOf: (node: number, t: number) => number,
  partitions: Fault[],
  problems: string[]
): { acked: number, consistentOk: number, consistent503: number, convergeMs: number | undefined } {
  const label = what === 'counter' ? 'counter' : 'tenant'
  const reads = h.ops.filter(o => o.op === kinds.read && o.result === 'ok' && o.key !== undefined)
  const totalAcked = (key: string): number => weightUpTo(ledger.acked.get(key), Infinity)
  const keys = [...new Set([...ledger.keys, ...reads.map(r => r.key!)])]

  // No invention: no read shows more than everything sent before it completed.
  for (const r of reads) {
    const sent = weightUpTo(ledger.sent.get(r.key!), r.completeMs)
    if ((r.answer as number) > sent) problems.push(`invented: n${r.node} ${label} ${r.key} = ${r.answer as number} > ${sent} sent by ${r.completeMs} ms`)
  }

  // Monotonic per node, key and wipe epoch: a read that began after another
  // completed must not show less.
  const groups = new Map<string, Op[]>()
  for (const r of reads) push(groups, `${r.node}/${r.key!}/${epochOf(r.node, r.invokeMs)}`, r)
  for (const rs of groups.values()) {
    const byComplete = [...rs].sort((a, b) => a.completeMs - b.completeMs)
    const byInvoke = [...rs].sort((a, b) => a.invokeMs - b.invokeMs)
    let j = 0
    let max: Op | undefined
    for (const r of byInvoke) {
      while (j < byComplete.length && byComplete[j].completeMs < r.invokeMs) {
        if (max === undefined || (byComplete[j].answer as number) > (max.answer as number)) max = byComplete[j]
        j++
      }
      if (max !== undefined && (r.answer as number) < (max.answer as number)) {
        problems.push(`monotonic: n${r.node} ${label} ${r.key!} went ${max.answer as number} (at ${max.completeMs} ms) -> ${r.answer as number} (at ${r.invokeMs} ms)`)
        max = r // report each drop once
      }
    }
  }

  // Consistent reads: a 200 includes everything acked before the read
  // began, and is impossible while a partition hid a member for the whole read.
  let consistentOk = 0
  let consistent503 = 0
  for (const c of h.ops.filter(o => o.op === kinds.consistent)) {
    if (c.result === 'fail' && c.status === 503) consistent503++
    if (c.result !== 'ok') continue
    consistentOk++
    const ackedBefore = weightUpTo(ledger.acked.get(c.key!), c.invokeMs, true)
    if ((c.answer as number) < ackedBefore) problems.push(`consistent read: n${c.node} ${label} ${c.key!} = ${c.answer as number} < ${ackedBefore} acked before the read (${c.final === true ? 'after heal' : `at ${c.invokeMs} ms`})`)
    const p = partitions.find(p => p.start < c.invokeMs && p.end !== undefined && c.completeMs < p.end)
    if (p !== undefined) problems.push(`consistent read: n${c.node} ${label} ${c.key!} answered 200 during the partition ${p.nodes.join(',')} | rest (read ${c.invokeMs}-${c.completeMs} ms)`)
  }
  for (const c of h.ops.filter(o => o.op === kinds.consistent && o.final === true && o.result !== 'ok')) {
    problems.push(`consistent read after heal: n${c.node} ${label} ${c.key!} answered ${c.status ?? 'nothing'}`)
  }

  // No lost acks: the final reads of every node hold everything acked.
  const finals = reads.filter(r => r.final === true)
  for (const key of keys) {
    const acked = totalAcked(key)
    for (let node = 1; node <= h.options.nodes; node++) {
      const f = finals.find(r => r.node === node && r.key === key)
      if (f === undefined) problems.push(`final read: n${node} ${label} ${key} could not be read after the heal`)
      else if ((f.answer as number) < acked) problems.push(`lost acks: n${node} ${label} ${key} = ${f.answer as number} < acked ${acked}`)
    }
  }

  // Convergence: the first round of reads after the last heal in which
  // every node shows the same value for every key, all of it acked.
  let convergeMs: number | undefined
  const rounds = new Map<number, Op[]>()
  for (const r of reads) if (r.round !== undefined) push(rounds, r.round, r)
  for (const k of [...rounds.keys()].sort((a, b) => a - b)) {
    const rs = rounds.get(k)!
    const complete = keys.every(key => {
      const vs = Array.from({ length: h.options.nodes }, (_, i) => rs.find(r => r.node === i + 1 && r.key === key)?.answer as number | undefined)
      return vs.every(v => v !== undefined && v === vs[0] && v >= totalAcked(key))
    })
    if (complete) {
      const at = Math.max(...rs.map(r => r.completeMs)) - h.lastHealMs
      if (at <= CONVERGE_WITHIN_MS) convergeMs = Math.max(0, at)
      break
    }
  }
  const acked = keys.reduce((s, k) => s + totalAcked(k), 0)
  return { acked, consistentOk, consistent503, convergeMs }
}

// ---- IDs ----

function checkIds (h: History, problems: string[]): Record<string, number | string> {
  const ops = h.ops.filter(o => o.op === 'ids')
  const ok = ops.filter(o => o.result === 'ok')
  const seen = new Map<string, Op>()
  let dup = 0
  let ids = 0
  for (const o of ok) {
    for (const id of o.answer as string[]) {
      ids++
      const prev = seen.get(id)
      if (prev !== undefined) {
        dup++
        if (dup <= 20) problems.push(`duplicate id: ${id} from n${o.node} at ${o.completeMs} ms, already from n${prev.node} at ${prev.completeMs} ms`)
      } else seen.set(id, o)
    }
  }
  if (dup > 20) problems.push(`duplicate id: ${dup - 20} more`)

  // Ordered: per answering node and slot, each answer's IDs increase, and an
  // answer that began after another completed holds only larger IDs.
  const groups = new Map<string, Array<{ op: Op, min: bigint, max: bigint }>>()
  const slots = new Map<number, Set<number>>()
  for (const o of ok) {
    const list = (o.answer as string[]).map(s => BigInt(s))
    if (list.length === 0) continue
    for (let i = 1; i < list.length; i++) {
      if (list[i] <= list[i - 1]) problems.push(`id order: n${o.node} answered ${list[i - 1]} before ${list[i]} in one answer at ${o.completeMs} ms`)
    }
    const slot = decodeId(list[0].toString()).slot
    if (!slots.has(o.node)) slots.set(o.node, new Set())
    slots.get(o.node)!.add(slot)
    const min = list.reduce((a, b) => a < b ? a : b)
    const max = list.reduce((a, b) => a > b ? a : b)
    push(groups, `${o.node}/${slot}`, { op: o, min, max })
  }
  for (const xs of groups.values()) {
    const byComplete = [...xs].sort((a, b) => a.op.completeMs - b.op.completeMs)
    const byInvoke = [...xs].sort((a, b) => a.op.invokeMs - b.op.invokeMs)
    let j = 0
    let max: typeof xs[number] | undefined
    for (const x of byInvoke) {
      while (j < byComplete.length && byComplete[j].op.completeMs < x.op.invokeMs) {
        if (max === undefined || byComplete[j].max > max.max) max = byComplete[j]
        j++
      }
      if (max !== undefined && x.min <= max.max) {
        problems.push(`id order: n${x.op.node} answered ${x.min} at ${x.op.invokeMs}-${x.op.completeMs} ms after ${max.max} at ${max.op.completeMs} ms`)
        max = x
      }
    }
  }

  // Time: never more than 1 s ahead of the answer, plus any forward clock
  // offset the nemesis had injected into that node around the request.
  const clocks = h.faults.filter(f => f.kind === 'clock' && f.skipped === undefined)
  let ahead = 0
  for (const o of ok) {
    const injected = Math.max(0, ...clocks
      .filter(f => f.nodes.includes(o.node) && f.start <= o.completeMs && (f.end === undefined || f.end + 100 >= o.invokeMs))
      .map(f => f.offsetMs ?? 0))
    for (const id of o.answer as string[]) {
      const aheadMs = decodeId(id).ms - (h.t0 + o.completeMs)
      if (aheadMs > ID_AHEAD_MS + injected) {
        ahead++
        if (ahead <= 10) problems.push(`id time: n${o.node} issued ${id} ${aheadMs} ms ahead of its answer at ${o.completeMs} ms`)
        break
      }
    }
  }
  // Slots each node answered with (a wiped node comes back on another): a figure, not a check.
  return {
    ids_ok: ids,
    ids_503: ops.filter(o => o.status === 503).length,
    dup_ids: dup,
    id_slots: [...slots].map(([n, s]) => `n${n}:${[...s].join('/')}`).join(';')
  }
}
