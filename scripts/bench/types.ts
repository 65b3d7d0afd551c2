import type { LoadGen } from './procs.js'

export interface Target { op: '>=' | '<=' | '<', value: number }

export interface Row {
  section: string
  metric: string
  /** Median over runs (or the single measurement). */
  value: number
  unit: string
  target?: Target
  /** Per-run figures the median was taken from. */
  runs?: number[]
  note?: string
}

/** A latency distribution for the SVG: percentile (0..100) -> ms. */
export interface Curve { label: string, points: Array<[number, number]> }

export interface SectionResult {
  id: number
  title: string
  method: string
  rows: Row[]
  curves?: Curve[]
  raw?: unknown
  /** Runs per figure (filled in by main). */
  repeats?: number
}

export interface Ctx {
  quick: boolean
  /** Runs per measurement (figures are medians over them). */
  repeats: number
  load: LoadGen
}

export function met (r: Row): boolean | undefined {
  if (r.target === undefined || !Number.isFinite(r.value)) return r.target === undefined ? undefined : false
  const t = r.target
  return t.op === '>=' ? r.value >= t.value : t.op === '<=' ? r.value <= t.value : r.value < t.value
}

/** autocannon's percentile keys, as [percentile, key]. */
export const AC_PERCENTILES: Array<[number, string]> = [
  [1, 'p1'], [2.5, 'p2_5'], [10, 'p10'], [25, 'p25'], [50, 'p50'], [75, 'p75'], [90, 'p90'],
  [97.5, 'p97_5'], [99, 'p99'], [99.9, 'p99_9'], [99.99, 'p99_99'], [99.999, 'p99_999']
]

export function curveFromAutocannon (label: string, latency: Record<string, number>): Curve {
  return { label, points: AC_PERCENTILES.filter(([, k]) => latency[k] !== undefined).map(([p, k]) => [p, latency[k]]) }
}
