// A picture of a chaos run: every node's summed counter value over time,
// with the fault windows shaded and labelled.
import type { Fault, Op } from './history.js'

export interface Sample { t: number, node: number, value: number }

/** Each node's sum over keys of the last value read, at every read (the lines of the picture). */
export function samplesFrom (ops: Op[], kind: Op['op']): Sample[] {
  const last = new Map<number, Map<string, number>>()
  const out: Sample[] = []
  for (const o of ops.filter(o => o.op === kind && o.result === 'ok').sort((a, b) => a.completeMs - b.completeMs)) {
    if (!last.has(o.node)) last.set(o.node, new Map())
    const mine = last.get(o.node)!
    mine.set(o.key!, o.answer as number)
    out.push({ t: o.completeMs, node: o.node, value: [...mine.values()].reduce((a, b) => a + b, 0) })
  }
  return out
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22']
const FAULT_COLORS: Record<string, string> = { partition: '#fdd', flap: '#fed', kill: '#ddf', pause: '#dfd', wipe: '#eee', netem: '#ffd', clock: '#dff' }

export function renderSvg (samples: Sample[], faults: Fault[], nodes: number, acked: number, what = 'sum of counter values'): string {
  const W = 1000
  const H = 420
  const pad = { l: 70, r: 20, t: 30, b: 40 }
  const tMax = Math.max(1, ...samples.map(s => s.t), ...faults.map(f => f.end ?? f.start))
  const vMax = Math.max(1, acked, ...samples.map(s => s.value))
  const x = (t: number): number => pad.l + (t / tMax) * (W - pad.l - pad.r)
  const y = (v: number): number => H - pad.b - (v / vMax) * (H - pad.t - pad.b)
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`, `<rect width="${W}" height="${H}" fill="white"/>`]
  // Faults overlap: translucent bands, labels on staggered rows.
  faults.filter(f => f.skipped === undefined).forEach((f, i) => {
    const x0 = x(f.start)
    const x1 = x(f.end ?? tMax)
    parts.push(`<rect x="${x0}" y="${pad.t}" width="${Math.max(1, x1 - x0)}" height="${H - pad.t - pad.b}" fill="${FAULT_COLORS[f.kind] ?? '#eee'}" fill-opacity="0.6"/>`)
    parts.push(`<text x="${x0 + 2}" y="${pad.t + 12 + 12 * (i % 4)}" fill="#555">${f.kind}${f.offsetMs !== undefined ? ` ${f.offsetMs}ms` : ''} ${f.nodes.join(',')}</text>`)
  })
  for (let i = 1; i <= nodes; i++) {
    const pts = samples.filter(s => s.node === i).map(s => `${x(s.t).toFixed(1)},${y(s.value).toFixed(1)}`)
    if (pts.length > 0) parts.push(`<polyline fill="none" stroke="${COLORS[(i - 1) % COLORS.length]}" stroke-width="1.5" points="${pts.join(' ')}"/>`)
    parts.push(`<text x="${W - pad.r - 60}" y="${H - pad.b - 10 - 14 * (nodes - i)}" fill="${COLORS[(i - 1) % COLORS.length]}">n${i}</text>`)
  }
  parts.push(`<line x1="${pad.l}" y1="${y(acked)}" x2="${W - pad.r}" y2="${y(acked)}" stroke="black" stroke-dasharray="4 3"/>`)
  parts.push(`<text x="${pad.l + 4}" y="${y(acked) - 4}">acked total ${acked}</text>`)
  parts.push(`<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="black"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="black"/>`)
  for (let k = 0; k <= 5; k++) {
    const t = (tMax * k) / 5
    parts.push(`<text x="${x(t) - 10}" y="${H - pad.b + 16}">${(t / 1000).toFixed(0)}s</text>`)
    const v = (vMax * k) / 5
    parts.push(`<text x="4" y="${y(v) + 4}">${Math.round(v)}</text>`)
  }
  parts.push(`<text x="${pad.l}" y="18" font-size="13">countd chaos run: ${what} per node over time (shaded: faults)</text>`, '</svg>')
  return parts.join('\n')
}
