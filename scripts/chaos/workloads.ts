// The client side of a chaos run: one workload per kind of data (counters,
// items, IDs). Each sends requests to random nodes and records every one as
// an operation in the history; none of them judges anything (checker.ts does).
import type { CountdNode } from '../cluster.js'
import type { Item, Op, OpKind, Workload } from './history.js'

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** What every workload shares with the run. */
export interface RunContext {
  nodes: CountdNode[]
  headers: Record<string, string>
  now: () => number
  random: () => number
  record: (op: Op) => void
  /** Nodes clients stay away from (about to be wiped). */
  drained: Set<CountdNode>
  stopping: () => boolean
}

export interface WorkloadRunner {
  readonly name: Workload
  /** Writers and readers; they return once the run is stopping. */
  loops: (clients: number) => Array<Promise<void>>
  /** Read every key on every node once (a convergence round, or the final reads). */
  readAll: (tag: { round?: number, final?: boolean }) => Promise<void>
  /** Whether the ops of one round show every node agreeing on everything acked. */
  agreed: (round: Op[]) => boolean
  /** Consistent reads on every node after the heal (each must answer 200). */
  finalConsistent: () => Promise<void>
  /** Whether everything written through `node` has reached every other node (before a wipe). */
  spreadFrom: (node: CountdNode) => Promise<boolean>
}

type Outcome = { status: number, text: string } | { error: 'refused' | 'other' }

/** One HTTP request with a timeout; a refused connection is told apart (it cannot have had an effect). */
async function request (ctx: RunContext, node: CountdNode, path: string, init: { method?: string, body?: string, headers?: Record<string, string> }, timeoutMs: number): Promise<Outcome> {
  try {
    const res = await fetch(`${node.url}${path}`, { ...init, headers: { ...ctx.headers, ...init.headers }, signal: AbortSignal.timeout(timeoutMs) })
    return { status: res.status, text: await res.text() }
  } catch (err: any) {
    return { error: err?.cause?.code === 'ECONNREFUSED' ? 'refused' : 'other' }
  }
}

/** A write's outcome: 200 acked; refused or 4xx certainly not applied; anything else unknown. */
function writeResult (r: Outcome): Op['result'] {
  if ('error' in r) return r.error === 'refused' ? 'fail' : 'info'
  if (r.status === 200) return 'ok'
  return r.status >= 400 && r.status < 500 ? 'fail' : 'info'
}

function nodeNo (ctx: RunContext, node: CountdNode): number { return ctx.nodes.indexOf(node) + 1 }

function pick<T> (ctx: RunContext, xs: T[]): T { return xs[Math.floor(ctx.random() * xs.length)] }

/** A node clients may use now. */
async function liveNode (ctx: RunContext): Promise<CountdNode | undefined> {
  const node = pick(ctx, ctx.nodes)
  if (!ctx.drained.has(node)) return node
  await sleep(5)
  return undefined
}

/** A grow-only number per key (counter value, tenant's item count): reads, consistent reads, convergence. */
abstract class GrowingWorkload implements WorkloadRunner {
  abstract readonly name: Workload
  abstract readonly keys: string[]
  abstract readonly readKind: OpKind
  abstract readonly consistentKind: OpKind
  constructor (readonly ctx: RunContext) {}

  abstract writer (): Promise<void>
  abstract readPath (key: string): string
  abstract consistentPath (key: string, timeoutSec: number): string
  abstract parse (text: string): number
  abstract ackedTotal (key: string): number
  abstract spreadFrom (node: CountdNode): Promise<boolean>

  loops (clients: number): Array<Promise<void>> {
    return [...Array.from({ length: clients }, async () => await this.writer()), this.reader(), this.consistentReader()]
  }

  async readOne (node: CountdNode, key: string, tag: { round?: number, final?: boolean }, timeoutMs: number): Promise<void> {
    const invokeMs = this.ctx.now()
    const r = await request(this.ctx, node, this.readPath(key), {}, timeoutMs)
    const ok = !('error' in r) && r.status === 200
    this.ctx.record({ op: this.readKind, node: nodeNo(this.ctx, node), invokeMs, completeMs: this.ctx.now(), result: ok ? 'ok' : 'fail', key, ...(ok ? { answer: this.parse(r.text) } : {}), ...('status' in r ? { status: r.status } : {}), ...tag })
  }

  /** Every node's value of every key, five times a second. */
  async reader (): Promise<void> {
    while (!this.ctx.stopping()) {
      await Promise.all(this.ctx.nodes.map(async n => {
        if (this.ctx.drained.has(n)) return // about to be wiped: starts a new history
        for (const key of this.keys) await this.readOne(n, key, {}, 500)
      }))
      await sleep(200)
    }
  }

  async consistentRead (node: CountdNode, key: string, timeoutSec: number, final: boolean): Promise<void> {
    const invokeMs = this.ctx.now()
    const r = await request(this.ctx, node, this.consistentPath(key, timeoutSec), {}, timeoutSec * 1000 + 2000)
    const ok = !('error' in r) && r.status === 200
    if (!ok && final) {
      // For the post-mortem: what this node thinks of its members and peers.
      const status = await request(this.ctx, node, '/status', {}, 3000)
      const members = await request(this.ctx, node, '/members?limit=100', {}, 3000)
      process.stderr.write(`[chaos] final consistent read on ${node.name} failed: ${'text' in r ? r.text.slice(0, 300) : String((r as any).error)}\n  status: ${'text' in status ? status.text.slice(0, 1500) : ''}\n  members: ${'text' in members ? members.text.slice(0, 3000) : ''}\n`)
    }
    this.ctx.record({ op: this.consistentKind, node: nodeNo(this.ctx, node), invokeMs, completeMs: this.ctx.now(), result: ok ? 'ok' : 'error' in r ? 'info' : 'fail', key, ...(ok ? { answer: this.parse(r.text) } : {}), ...('status' in r ? { status: r.status } : {}), ...(!ok && 'text' in r ? { error: r.text.slice(0, 500) } : {}), ...(final ? { final } : {}) })
  }

  async consistentReader (): Promise<void> {
    while (!this.ctx.stopping()) {
      await this.consistentRead(pick(this.ctx, this.ctx.nodes), pick(this.ctx, this.keys), 1, false)
      await sleep(300)
    }
  }

  async readAll (tag: { round?: number, final?: boolean }): Promise<void> {
    await Promise.all(this.ctx.nodes.map(async n => { for (const key of this.keys) await this.readOne(n, key, tag, 1000) }))
  }

  agreed (round: Op[]): boolean {
    return this.keys.every(key => {
      const vs = this.ctx.nodes.map((_, i) => round.find(o => o.op === this.readKind && o.node === i + 1 && o.key === key && o.result === 'ok')?.answer)
      return vs.every(v => v !== undefined && v === vs[0] && (v as number) >= this.ackedTotal(key))
    })
  }

  async finalConsistent (): Promise<void> {
    for (const n of this.ctx.nodes) await this.consistentRead(n, this.keys[0], 3, true)
  }
}

export class CountersWorkload extends GrowingWorkload {
  readonly name = 'counters' as const
  readonly keys = ['c0', 'c1', 'c2', 'c3']
  readonly readKind = 'read' as const
  readonly consistentKind = 'consistent' as const
  private readonly acked = new Map<string, number>()

  async writer (): Promise<void> {
    while (!this.ctx.stopping()) {
      const node = await liveNode(this.ctx)
      if (node === undefined) continue
      const key = pick(this.ctx, this.keys)
      const by = 1 + Math.floor(this.ctx.random() * 5)
      const invokeMs = this.ctx.now()
      const r = await request(this.ctx, node, `/counter/${key}`, { method: 'POST', body: String(by) }, 1000)
      const result = writeResult(r)
      this.ctx.record({ op: 'inc', node: nodeNo(this.ctx, node), invokeMs, completeMs: this.ctx.now(), result, key, value: by, ...('status' in r ? { status: r.status } : {}) })
      if (result === 'ok') this.acked.set(key, (this.acked.get(key) ?? 0) + by)
      else await sleep(20)
    }
  }

  readPath (key: string): string { return `/counter/${key}/value` }
  consistentPath (key: string, timeoutSec: number): string { return `/counter/${key}/consistent_value?timeout=${timeoutSec}` }
  parse (text: string): number { return Number(text) }
  ackedTotal (key: string): number { return this.acked.get(key) ?? 0 }

  /** Every other node holds `node`'s own counts of every counter (GET /counter/:name lists them per replica). */
  async spreadFrom (node: CountdNode): Promise<boolean> {
    const view = async (n: CountdNode, key: string): Promise<number> => {
      const r = await request(this.ctx, n, `/counter/${key}`, {}, 1000)
      if ('error' in r || r.status !== 200) throw new Error('unreadable')
      const m = new RegExp(`"${node.peerId}":(\\d+)`).exec(r.text)
      return m === null ? 0 : Number(m[1])
    }
    const own = await Promise.all(this.keys.map(async k => await view(node, k)))
    const others = await Promise.all(this.ctx.nodes.filter(n => n !== node).map(async n => await Promise.all(this.keys.map(async k => await view(n, k)))))
    return others.every(row => row.every((v, j) => v >= own[j]))
  }
}

/** Ids per tenant are drawn from this many, so the same pair is sent again and again. */
export const ITEM_ID_SPACE = 300

export class ItemsWorkload extends GrowingWorkload {
  readonly name = 'items' as const
  readonly keys = ['t0', 't1', 't2', 't3']
  readonly readKind = 'items-count' as const
  readonly consistentKind = 'items-consistent' as const
  /** Distinct acked pairs per tenant; and per node, the pairs only that node acked (what a wipe could lose). */
  private readonly acked = new Map<string, Set<string>>()
  private readonly ackedBy = new Map<CountdNode, Set<string>>()

  async writer (): Promise<void> {
    while (!this.ctx.stopping()) {
      const node = await liveNode(this.ctx)
      if (node === undefined) continue
      const items: Item[] = Array.from({ length: 1 + Math.floor(this.ctx.random() * 20) }, () => ({
        tenant: pick(this.ctx, this.keys),
        id: `i${Math.floor(this.ctx.random() * ITEM_ID_SPACE)}`
      }))
      const invokeMs = this.ctx.now()
      const r = await request(this.ctx, node, '/items', { method: 'POST', body: JSON.stringify(items), headers: { 'Content-Type': 'application/json' } }, 1000)
      const result = writeResult(r)
      this.ctx.record({ op: 'items-add', node: nodeNo(this.ctx, node), invokeMs, completeMs: this.ctx.now(), result, value: items, ...('status' in r ? { status: r.status } : {}) })
      if (result === 'ok') {
        if (!this.ackedBy.has(node)) this.ackedBy.set(node, new Set())
        for (const it of items) {
          if (!this.acked.has(it.tenant)) this.acked.set(it.tenant, new Set())
          this.acked.get(it.tenant)!.add(it.id)
          this.ackedBy.get(node)!.add(`${it.tenant}/${it.id}`)
        }
      } else await sleep(20)
    }
  }

  readPath (key: string): string { return `/items/${key}/count` }
  consistentPath (key: string, timeoutSec: number): string { return `/items/${key}/count?consistent=true&timeout=${timeoutSec}` }
  parse (text: string): number { return Number((JSON.parse(text) as { count: number }).count) }
  ackedTotal (key: string): number { return this.acked.get(key)?.size ?? 0 }

  /** Every other node has every pair `node` acknowledged (GET /items/:tenant/has, a few at a time). */
  async spreadFrom (node: CountdNode): Promise<boolean> {
    const pairs = [...(this.ackedBy.get(node) ?? [])]
    const others = this.ctx.nodes.filter(n => n !== node)
    for (let i = 0; i < pairs.length; i += 16) {
      const answers = await Promise.all(pairs.slice(i, i + 16).flatMap(p => others.map(async n => {
        const [tenant, id] = p.split('/')
        const r = await request(this.ctx, n, `/items/${tenant}/has?id=${encodeURIComponent(id)}`, {}, 1000)
        return !('error' in r) && r.status === 200 && (JSON.parse(r.text) as { present: boolean }).present
      })))
      if (!answers.every(Boolean)) return false
    }
    return true
  }
}

export class IdsWorkload implements WorkloadRunner {
  readonly name = 'ids' as const
  constructor (readonly ctx: RunContext) {}

  loops (clients: number): Array<Promise<void>> {
    return Array.from({ length: clients }, async () => await this.client())
  }

  /** Half single IDs (GET /ids/next), half batches (GET /ids?count=N). */
  async client (): Promise<void> {
    while (!this.ctx.stopping()) {
      const node = await liveNode(this.ctx)
      if (node === undefined) continue
      const batch = this.ctx.random() < 0.5
      const count = batch ? 1 + Math.floor(this.ctx.random() * 50) : 1
      const invokeMs = this.ctx.now()
      const r = await request(this.ctx, node, batch ? `/ids?count=${count}` : '/ids/next', {}, 1000)
      let answer: string[] | undefined
      if (!('error' in r) && r.status === 200) {
        try { answer = batch ? (JSON.parse(r.text) as { ids: string[] }).ids : [r.text.trim()] } catch {}
      }
      // An ID answer that does not parse is recorded as unknown; a 503 is a refusal (no IDs issued).
      const result = answer !== undefined ? 'ok' : 'error' in r ? (r.error === 'refused' ? 'fail' : 'info') : r.status === 200 ? 'info' : 'fail'
      this.ctx.record({ op: 'ids', node: nodeNo(this.ctx, node), invokeMs, completeMs: this.ctx.now(), result, value: count, ...(answer !== undefined ? { answer } : {}), ...('status' in r ? { status: r.status } : {}) })
      if (result !== 'ok') await sleep(50)
    }
  }

  async readAll (): Promise<void> {}
  agreed (): boolean { return true }
  async finalConsistent (): Promise<void> {}
  /** IDs are not replicated data: nothing to spread before a wipe. */
  async spreadFrom (): Promise<boolean> { return true }
}
