// The nemesis: a seeded plan of faults, some of which overlap (a partition
// while a node is paused, a kill while a partition heals, two nodes down at
// once), then an executor that applies it to the cluster. The plan is made
// up front from the seed alone, so a seed replays the same faults in the
// same order; only their exact timing depends on the machine.
import type { Fault } from './history.js'

export const NEMESES = ['partition', 'flap', 'kill', 'pause', 'wipe', 'netem', 'clock'] as const
export type Nemesis = typeof NEMESES[number]

/** Offsets the clock nemesis writes into a node's clock file (SPEC §6 test hook), then back to 0. */
export const CLOCK_OFFSETS_MS = [2000, -1500, -30000]

type Action = 'partition' | 'heal' | 'kill' | 'restart' | 'pause' | 'resume' | 'degrade' | 'undegrade' | 'wipe' | 'clock' | 'unclock'

export interface Step {
  /** Planned time, ms since t0. Steps with the same time run at once. */
  at: number
  action: Action
  nodes: number[]
  /** Index of the fault this step belongs to, and whether it applies or undoes it. */
  fault: number
  role: 'begin' | 'end' | 'both' | 'inner'
  offsetMs?: number
}

export interface Plan { faults: Fault[], steps: Step[] }

/** What the executor needs from the run. Node numbers are 1-based. */
export interface FaultTarget {
  now: () => number
  partition: (side: number[]) => void
  heal: () => void
  kill: (node: number) => Promise<void>
  restart: (node: number) => Promise<void>
  pause: (node: number) => void
  resume: (node: number) => void
  degrade: (node: number) => void
  undegrade: (node: number) => void
  /** Wipe the node's data dir once its writes have spread; a reason if it was skipped. */
  wipe: (node: number, fault: Fault) => Promise<string | undefined>
  setClock: (node: number, offsetMs: number) => void
}

/** mulberry32: a seeded PRNG so a run can be replayed. */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A fault in a scenario, times relative to the scenario's start. */
interface Planned { kind: string, nodes: number[], steps: Array<{ at: number, action: Action, nodes: number[], offsetMs?: number }>, offsetMs?: number }

const DOWN: ReadonlySet<string> = new Set(['kill', 'pause', 'wipe'])
/** How long a wipe holds the cluster (drain, spread check, restart), for placement only. */
const WIPE_MS = 7000

export interface PlanOptions { nodes: number, seconds: number, seed: number, nemeses: Nemesis[] }

/**
 * Make the plan. Rules: one network fault (partition, flap) at a time; a
 * node is killed, paused or wiped by one fault at a time; at most
 * floor((n-1)/2) nodes down (killed, paused, wiped) at once, so a majority
 * always serves; a wipe overlaps nothing (it waits for the node's writes to
 * spread to every other node).
 */
export function makePlan (o: PlanOptions): Plan {
  const random = rng(o.seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]
  const has = (k: Nemesis): boolean => o.nemeses.includes(k)
  const n = o.nodes
  const maxDown = Math.floor((n - 1) / 2)
  const someNodes = (k: number, except: number[] = []): number[] => {
    const out: number[] = []
    while (out.length < k) {
      const x = 1 + Math.floor(random() * n)
      if (!out.includes(x) && !except.includes(x)) out.push(x)
    }
    return out.sort((a, b) => a - b)
  }
  const side = (): number[] => someNodes(random() < 0.5 ? 1 : Math.floor(n / 2))
  const hold = (): number => 2000 + random() * 3000

  const single = (kind: Nemesis): Planned[] => {
    const h = hold()
    switch (kind) {
      case 'partition': { const s = side(); return [{ kind, nodes: s, steps: [{ at: 0, action: 'partition', nodes: s }, { at: h, action: 'heal', nodes: [] }] }] }
      case 'flap': {
        const s = someNodes(Math.floor(n / 2))
        const steps: Planned['steps'] = []
        for (let t = 0; t < h;) {
          steps.push({ at: t, action: 'partition', nodes: s })
          t += 200 + random() * 500
          steps.push({ at: t, action: 'heal', nodes: [] })
          t += 200 + random() * 500
        }
        return [{ kind, nodes: s, steps }]
      }
      case 'kill': { const [k] = someNodes(1); return [{ kind, nodes: [k], steps: [{ at: 0, action: 'kill', nodes: [k] }, { at: h / 2, action: 'restart', nodes: [k] }] }] }
      case 'pause': { const [k] = someNodes(1); return [{ kind, nodes: [k], steps: [{ at: 0, action: 'pause', nodes: [k] }, { at: h, action: 'resume', nodes: [k] }] }] }
      case 'netem': { const s = someNodes(Math.max(1, Math.floor(n / 2))); return [{ kind, nodes: s, steps: [{ at: 0, action: 'degrade', nodes: s }, { at: h, action: 'undegrade', nodes: s }] }] }
      case 'wipe': { const [k] = someNodes(1); return [{ kind, nodes: [k], steps: [{ at: 0, action: 'wipe', nodes: [k] }] }] }
      case 'clock': {
        const [k] = someNodes(1)
        const offsetMs = pick(CLOCK_OFFSETS_MS)
        return [{ kind, nodes: [k], offsetMs, steps: [{ at: 0, action: 'clock', nodes: [k], offsetMs }, { at: h, action: 'unclock', nodes: [k] }] }]
      }
    }
  }

  // Overlapping scenarios, each made of faults that overlap by construction.
  const combos: Record<string, (() => Planned[]) | undefined> = {
    // A partition while a node is paused; the pause ends before or after the heal.
    'partition+pause': has('partition') && has('pause')
      ? () => {
          const h = hold()
          const s = side()
          const [p] = someNodes(1)
          return [
            { kind: 'partition', nodes: s, steps: [{ at: 0, action: 'partition', nodes: s }, { at: h, action: 'heal', nodes: [] }] },
            { kind: 'pause', nodes: [p], steps: [{ at: h * 0.3, action: 'pause', nodes: [p] }, { at: h * (random() < 0.5 ? 0.8 : 1.3), action: 'resume', nodes: [p] }] }
          ]
        }
      : undefined,
    // kill -9 at the very moment a partition heals (both steps run at once).
    'kill-during-heal': has('partition') && has('kill')
      ? () => {
          const h = hold()
          const s = side()
          const [k] = someNodes(1)
          return [
            { kind: 'partition', nodes: s, steps: [{ at: 0, action: 'partition', nodes: s }, { at: h, action: 'heal', nodes: [] }] },
            { kind: 'kill', nodes: [k], steps: [{ at: h, action: 'kill', nodes: [k] }, { at: h + 1500 + random() * 1500, action: 'restart', nodes: [k] }] }
          ]
        }
      : undefined,
    // Two nodes down at once: a kill, and while it lasts a second kill or a pause.
    'two-down': has('kill') && maxDown >= 2
      ? () => {
          const h = hold()
          const [a, b] = someNodes(2)
          const second = has('pause') && random() < 0.5 ? 'pause' : 'kill'
          return [
            { kind: 'kill', nodes: [a], steps: [{ at: 0, action: 'kill', nodes: [a] }, { at: h * 0.7, action: 'restart', nodes: [a] }] },
            { kind: second, nodes: [b], steps: [{ at: h * 0.3, action: second, nodes: [b] }, { at: h, action: second === 'kill' ? 'restart' : 'resume', nodes: [b] }] }
          ]
        }
      : undefined
  }
  const comboNames = Object.keys(combos).filter(k => combos[k] !== undefined)
  const singles = o.nemeses

  const placed: Array<Planned & { origin: number, start: number, end: number }> = []
  const span = (p: Planned): [number, number] => {
    const ts = p.steps.map(s => s.at)
    return [Math.min(...ts), p.kind === 'wipe' ? Math.max(...ts) + WIPE_MS : Math.max(...ts)]
  }
  const resources = (p: Planned): string[] => {
    if (p.kind === 'partition' || p.kind === 'flap') return ['net']
    if (DOWN.has(p.kind)) return p.nodes.map(x => `proc${x}`)
    return p.nodes.map(x => `${p.kind}${x}`)
  }
  /** The end of a placed fault that conflicts with `cand` (absolute times), if any. */
  const conflict = (cand: Array<Planned & { origin: number, start: number, end: number }>): number | undefined => {
    const all = [...placed, ...cand]
    for (const c of cand) {
      for (const p of all) {
        if (p === c || p.end < c.start || c.end < p.start) continue
        const cross = cand.includes(p) // faults of one scenario may overlap by design
        if (!cross && (p.kind === 'wipe' || c.kind === 'wipe' || resources(p).some(r => resources(c).includes(r)))) return p.end
      }
    }
    // Down budget: count down faults in force at every down fault's start.
    const downs = all.filter(p => DOWN.has(p.kind))
    for (const d of downs) {
      const inForce = downs.filter(p => p.start <= d.start && d.start <= p.end).reduce((s, p) => s + p.nodes.length, 0)
      if (inForce > maxDown) return Math.max(...downs.filter(p => !cand.includes(p) && p.start <= d.start && d.start <= p.end).map(p => p.end), d.start)
    }
    return undefined
  }

  // Faults end a second before the workload does (a restart under load can
  // run late), so a run lasts about --seconds whatever the seed.
  const until = o.seconds * 1000 - 1000
  let t = 1000 + random() * 1500
  while (o.nemeses.length > 0 && t < until - 2000) {
    const useCombo = comboNames.length > 0 && random() < 0.45
    const scenario = useCombo ? combos[pick(comboNames)]!() : single(pick(singles))
    let start = t
    let cand: Array<Planned & { origin: number, start: number, end: number }> = []
    for (let tries = 0; tries < 30; tries++) {
      cand = scenario.map(p => { const [s, e] = span(p); return { ...p, origin: start, start: start + s, end: start + e } })
      const blockedUntil = conflict(cand)
      if (blockedUntil === undefined) break
      start = Math.max(start + 100, blockedUntil + 200)
      cand = []
    }
    if (cand.length === 0 || Math.max(...cand.map(c => c.end)) > until) break
    placed.push(...cand)
    const end = Math.max(...cand.map(c => c.end))
    // Half the time the next scenario starts while this one is still going.
    t = random() < 0.5 ? start + (end - start) * (0.2 + 0.6 * random()) : end + 1000 + random() * 1500
  }

  const faults: Fault[] = []
  const steps: Step[] = []
  for (const p of placed) {
    const index = faults.length
    faults.push({ kind: p.kind, nodes: p.nodes, start: p.start, ...(p.offsetMs !== undefined ? { offsetMs: p.offsetMs } : {}) })
    p.steps.forEach((s, i) => {
      const role = p.steps.length === 1 ? 'both' : i === 0 ? 'begin' : i === p.steps.length - 1 ? 'end' : 'inner'
      steps.push({ at: Math.round(p.origin + s.at), action: s.action, nodes: s.nodes, fault: index, role, ...(s.offsetMs !== undefined ? { offsetMs: s.offsetMs } : {}) })
    })
  }
  steps.sort((a, b) => a.at - b.at)
  return { faults, steps }
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** What a step must not run concurrently with or ahead of: steps sharing a key keep their plan order. */
function stepKeys (step: Step): string[] {
  switch (step.action) {
    case 'partition': case 'heal': return ['net']
    // 'down' orders every kill, pause and their undoing, so a slow restart
    // delays the next kill instead of letting more nodes be down than planned.
    case 'kill': case 'restart': case 'pause': case 'resume': return ['down', ...step.nodes.map(x => `proc${x}`)]
    case 'degrade': case 'undegrade': return step.nodes.map(x => `netem${x}`)
    case 'clock': case 'unclock': return step.nodes.map(x => `clock${x}`)
    case 'wipe': return ['*']
  }
}

/**
 * Run the plan against the cluster. Each step waits for its planned time
 * and for the earlier steps it conflicts with (same fault, same node,
 * the network, the down count; a wipe waits for everything), so the plan's
 * rules hold even when a restart takes longer than planned, while unrelated
 * faults keep their timing. Steps planned for the same moment run at once
 * (a kill while a partition heals). Returns the faults as they happened;
 * lastHealMs is when the final undo step finished.
 */
export async function execute (plan: Plan, target: FaultTarget, log: (msg: string) => void, problems: string[]): Promise<{ faults: Fault[], lastHealMs: number }> {
  const faults: Fault[] = plan.faults.map(f => ({ ...f, start: -1 }))
  let lastHealMs = 0
  const last = new Map<string, Promise<void>>()
  const all: Array<Promise<void>> = []
  for (const step of plan.steps) {
    const keys = [...stepKeys(step), `fault${step.fault}`]
    const deps = keys.includes('*') ? [...all] : [...keys.map(k => last.get(k)), last.get('*')].filter(p => p !== undefined)
    const run = (async () => {
      await Promise.all(deps)
      const wait = step.at - target.now()
      if (wait > 0) await sleep(wait)
      const fault = faults[step.fault]
      if (fault.skipped !== undefined) return
      // A partition ends when the heal begins (the consistent-read check
      // relies on it having been in force until then); a killed node's
      // fault ends when it is serving again.
      if (step.role === 'end' && step.action === 'heal') fault.end = target.now()
      try {
        await apply(step, fault, target, log)
      } catch (err: any) {
        problems.push(`nemesis ${step.action} ${step.nodes.join(',')} failed: ${String(err.message).split('\n')[0]}`)
        // The node's own last words (its stderr is in the message) for the post-mortem.
        process.stderr.write(`[chaos] ${String(err.message).slice(0, 2000)}\n`)
      }
      if (step.role === 'begin' || step.role === 'both') fault.start = target.now()
      if (step.role === 'both' || (step.role === 'end' && step.action !== 'heal')) fault.end = target.now()
      if (step.role === 'end' || step.role === 'both') lastHealMs = Math.max(lastHealMs, target.now())
    })()
    for (const k of keys) last.set(k, run)
    all.push(run)
  }
  await Promise.all(all)
  for (const f of faults) if (f.start < 0) f.start = f.end ?? 0
  return { faults, lastHealMs }
}

async function apply (step: Step, fault: Fault, t: FaultTarget, log: (msg: string) => void): Promise<void> {
  const [node] = step.nodes
  switch (step.action) {
    case 'partition':
      if (step.role === 'begin') log(`${fault.kind} ${step.nodes.join(',')} | rest`)
      t.partition(step.nodes)
      return
    case 'heal':
      if (step.role === 'end') log(`heal (${fault.kind} ${fault.nodes.join(',')})`)
      t.heal()
      return
    case 'kill': log(`kill -9 n${node}`); await t.kill(node); return
    case 'restart': log(`restart n${node}`); await t.restart(node); return
    case 'pause': log(`SIGSTOP n${node}`); t.pause(node); return
    case 'resume': log(`SIGCONT n${node}`); t.resume(node); return
    case 'degrade': log(`degrade ${step.nodes.join(',')}`); for (const x of step.nodes) t.degrade(x); return
    case 'undegrade': log(`undegrade ${step.nodes.join(',')}`); for (const x of step.nodes) t.undegrade(x); return
    case 'clock': log(`clock n${node} ${step.offsetMs! > 0 ? '+' : ''}${step.offsetMs!} ms`); t.setClock(node, step.offsetMs!); return
    case 'unclock': log(`clock n${node} back to 0`); t.setClock(node, 0); return
    case 'wipe': {
      const skipped = await t.wipe(node, fault)
      if (skipped !== undefined) {
        fault.skipped = skipped
        log(`wipe of n${node} skipped: ${skipped}`)
      }
    }
  }
}

/** One line per fault, for the log: what overlapped with what. */
export function describePlan (plan: Plan): string[] {
  return plan.faults.map((f, i) => {
    const mine = plan.steps.filter(s => s.fault === i)
    const end = Math.max(...mine.map(s => s.at))
    return `${(f.start / 1000).toFixed(1)}-${(end / 1000).toFixed(1)}s ${f.kind}${f.offsetMs !== undefined ? ` ${f.offsetMs}ms` : ''} ${f.nodes.map(x => `n${x}`).join(',')}`
  })
}
