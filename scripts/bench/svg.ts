// Latency distribution chart: one panel per group of curves, percentile on a
// "nines" axis (50%, 90%, 99%, 99.9%, ...) against latency in ms (log scale).
import type { Curve } from './types.js'

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b']

export interface Panel { title: string, curves: Curve[] }

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function renderLatencySvg (panels: Panel[], subtitle: string): string {
  const W = 900
  const PH = 320
  const pad = { l: 70, r: 20, t: 40, b: 45 }
  const H = 40 + panels.length * (PH + 20)
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${pad.l}" y="20" font-size="14">countd benchmark: latency distributions</text>`,
    `<text x="${pad.l}" y="34" fill="#555">${esc(subtitle)}</text>`]
  // x: -log10(1 - p/100), i.e. 0 at 0%, 1 at 90%, 2 at 99%, ...
  const nines = (p: number): number => -Math.log10(Math.max(1e-6, 1 - p / 100))
  panels.forEach((panel, pi) => {
    const top = 40 + pi * (PH + 20)
    const curves = panel.curves.filter(c => c.points.length > 0)
    const all = curves.flatMap(c => c.points)
    const xMax = Math.max(2, Math.ceil(Math.max(...all.map(([p]) => nines(p)))))
    const vals = all.map(([, v]) => Math.max(v, 0.1))
    const yLo = Math.pow(10, Math.floor(Math.log10(Math.min(...vals, 1))))
    const yHi = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals, 10))))
    const x = (p: number): number => pad.l + (nines(p) / xMax) * (W - pad.l - pad.r)
    const y = (v: number): number => top + PH - pad.b - ((Math.log10(Math.max(v, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * (PH - pad.t - pad.b)
    parts.push(`<text x="${pad.l}" y="${top + 22}" font-size="13">${esc(panel.title)}</text>`)
    // axes and grid
    const y0 = top + PH - pad.b
    const y1 = top + pad.t
    parts.push(`<line x1="${pad.l}" y1="${y0}" x2="${W - pad.r}" y2="${y0}" stroke="black"/><line x1="${pad.l}" y1="${y0}" x2="${pad.l}" y2="${y1}" stroke="black"/>`)
    for (let k = 0; k <= xMax; k++) {
      const p = 100 * (1 - Math.pow(10, -k))
      const label = k === 0 ? '0%' : `${p.toFixed(Math.max(0, k - 2))}%`
      parts.push(`<line x1="${x(p)}" y1="${y0}" x2="${x(p)}" y2="${y1}" stroke="#ddd"/><text x="${x(p) - 12}" y="${y0 + 15}">${label}</text>`)
    }
    for (const p of [50, 75]) parts.push(`<line x1="${x(p)}" y1="${y0}" x2="${x(p)}" y2="${y1}" stroke="#eee"/><text x="${x(p) - 10}" y="${y0 + 15}" fill="#888">${p}%</text>`)
    for (let v = yLo; v <= yHi * 1.001; v *= 10) {
      parts.push(`<line x1="${pad.l}" y1="${y(v)}" x2="${W - pad.r}" y2="${y(v)}" stroke="#ddd"/><text x="${pad.l - 8}" y="${y(v) + 4}" text-anchor="end">${v >= 1 ? v.toFixed(0) : v.toFixed(1)} ms</text>`)
    }
    parts.push(`<text x="${(W + pad.l) / 2 - 30}" y="${y0 + 32}" fill="#555">percentile</text>`)
    curves.forEach((c, ci) => {
      const color = COLORS[ci % COLORS.length]
      const pts = c.points.map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`)
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>`)
      for (const [p, v] of c.points) parts.push(`<circle cx="${x(p).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${color}"><title>${esc(c.label)}: p${p} = ${v.toFixed(2)} ms</title></circle>`)
      parts.push(`<rect x="${pad.l + 12}" y="${y1 + 6 + ci * 16}" width="12" height="3" fill="${color}"/><text x="${pad.l + 30}" y="${y1 + 11 + ci * 16}">${esc(c.label)}</text>`)
    })
  })
  parts.push('</svg>')
  return parts.join('\n')
}
