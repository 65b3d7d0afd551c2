// Summarise a V8 .cpuprofile (node --cpu-prof): top functions by self time
// and self time per package/area. Usable on its own:
//   node dist/scripts/bench/profile.js FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface ProfileSummary {
  totalMs: number
  idleMs: number
  top: Array<{ fn: string, where: string, selfMs: number, pct: number }>
  areas: Array<{ area: string, selfMs: number, pct: number }>
}

function areaOf (url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native/builtin)'
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm !== null) return nm[1]
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/')
  const src = /\/(src|dist\/src)\/(.+)$/.exec(url)
  if (src !== null) return `countd ${src[2].replace(/\.js$/, '')}`
  return url.replace(/^file:\/\//, '')
}

export function summarize (file: string, topN = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0))
  const fns = new Map<string, { fn: string, where: string, us: number }>()
  const areas = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of self) {
    const n = byId.get(id)!
    const { functionName, url, lineNumber } = n.callFrame
    total += us
    if (functionName === '(idle)') { idle += us; continue }
    const fn = functionName === '' ? '(anonymous)' : functionName
    const where = url === '' ? '' : `${url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`
    const key = `${fn} ${where}`
    const e = fns.get(key) ?? { fn, where, us: 0 }
    e.us += us
    fns.set(key, e)
    const a = areaOf(url, functionName)
    areas.set(a, (areas.get(a) ?? 0) + us)
  }
  const busy = total - idle
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    top: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, topN).map(e => ({ fn: e.fn, where: e.where, selfMs: e.us / 1000, pct: 100 * e.us / busy })),
    areas: [...areas].sort((a, b) => b[1] - a[1]).slice(0, topN).map(([area, us]) => ({ area, selfMs: us / 1000, pct: 100 * us / busy }))
  }
}

export function formatSummary (s: ProfileSummary): string {
  const lines = [`profile: ${s.totalMs.toFixed(0)} ms sampled, ${s.idleMs.toFixed(0)} ms idle; percentages are of busy time`, '  top functions by self time:']
  for (const t of s.top) lines.push(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.selfMs.toFixed(0).padStart(7)} ms  ${t.fn}  ${t.where}`)
  lines.push('  self time by area:')
  for (const a of s.areas) lines.push(`    ${a.pct.toFixed(1).padStart(5)}%  ${a.selfMs.toFixed(0).padStart(7)} ms  ${a.area}`)
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node dist/scripts/bench/profile.js FILE.cpuprofile [TOP]\n')
    process.exit(2)
  }
  process.stdout.write(formatSummary(summarize(file, Number(process.argv[3] ?? 15))) + '\n')
}
