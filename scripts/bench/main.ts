// countd benchmarks. Usage (after `npm run build`):
//   npm run bench [-- --quick] [--only 1,6] [--repeats N] [--out DIR] [--profile]
//
//   --quick     shorter runs, fewer repeats, 100k names in section 5 and 1M items in section 10 (< 3 min on 2 cores)
//   --only L    comma-separated sections: 1 HTTP inc, 2 replication lag, 3 partition heal,
//               4 bytes per increment, 5 scale, 6 batch increments, 7 item ingest, 8 IDs,
//               9 Redis protocol vs redis-server, 10 items at scale
//   --repeats N runs per figure (default 5, quick 3); figures are medians over runs
//   --out DIR   where results.json and latency.svg go (default: bench/ in the repo)
//   --profile   run countd under --cpu-prof and print a self-time summary per process
//
// Progress goes to stderr; the table to stdout. Every process started here
// (countd nodes, baseline server, load generator) is killed on exit/Ctrl-C,
// and their temp data dirs removed. Ports: 31000-31999 on 127.0.0.1 only.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { repoRoot, countdBin } from '../cluster.js'
import { convergence } from './convergence.js'
import { batchIncrements, singleIncrements, itemIngest, idSection } from './http.js'
import { redisSection } from './redis.js'
import { LoadGen } from './procs.js'
import { formatSummary, summarize } from './profile.js'
import { replicationLag, wireBytes } from './replication.js'
import { scale } from './scale.js'
import { itemScale } from './itemscale.js'
import { renderLatencySvg, type Panel } from './svg.js'
import { met, type Ctx, type Row, type SectionResult } from './types.js'
import { clusterCost } from './cost.js'
import { installCleanup, profileCountd, progress, setSection, agent } from './util.js'

// quickRepeats: runs per figure in --quick (unless --repeats is given).
const SECTIONS: Record<number, { name: string, run: (ctx: Ctx) => Promise<SectionResult>, quickRepeats: number }> = {
  1: { name: 'single-node HTTP increments', run: singleIncrements, quickRepeats: 3 },
  2: { name: 'replication lag, 3 nodes', run: replicationLag, quickRepeats: 3 },
  3: { name: 'partition heal', run: convergence, quickRepeats: 2 },
  4: { name: 'bytes per increment', run: wireBytes, quickRepeats: 2 },
  5: { name: 'scale', run: scale, quickRepeats: 2 },
  6: { name: 'batch increments', run: batchIncrements, quickRepeats: 3 },
  7: { name: 'item ingest', run: itemIngest, quickRepeats: 3 },
  8: { name: 'IDs', run: idSection, quickRepeats: 3 },
  9: { name: 'Redis protocol vs redis-server', run: redisSection, quickRepeats: 2 },
  10: { name: 'items at scale', run: itemScale, quickRepeats: 1 },
  11: { name: 'cluster cost', run: clusterCost, quickRepeats: 2 }
}

interface Options { quick: boolean, only: number[], repeats?: number, out: string, profile: boolean }

function usage (msg: string): never {
  process.stderr.write(`bench: ${msg}\nusage: npm run bench -- [--quick] [--only 1,2,...] [--repeats N] [--out DIR] [--profile]\n`)
  process.exit(2)
}

function parseArgs (argv: string[]): Options {
  const o: Options = { quick: false, only: Object.keys(SECTIONS).map(Number), out: join(repoRoot, 'bench'), profile: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    const val = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined) usage(`${flag} needs a value`)
      return v
    }
    if (flag === '--quick') o.quick = true
    else if (flag === '--profile') o.profile = true
    else if (flag === '--only') {
      o.only = val().split(',').map(s => Number(s.trim()))
      for (const s of o.only) if (SECTIONS[s] === undefined) usage(`unknown section ${s} (1-${Object.keys(SECTIONS).length})`)
    } else if (flag === '--repeats') {
      o.repeats = Number(val())
      if (!Number.isInteger(o.repeats) || o.repeats < 1) usage('--repeats needs a whole number >= 1')
    } else if (flag === '--out') o.out = resolve(val())
    else if (flag === '--help' || flag === '-h') usage('help')
    else usage(`unknown flag ${a}`)
  }
  return o
}

function fmtValue (r: Row): string {
  const v = r.value
  if (!Number.isFinite(v)) return 'n/a'
  if (r.unit === 'ratio') return `${(v * 100).toFixed(1)}%`
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US')
  if (Math.abs(v) >= 100) return v.toFixed(0)
  return v.toFixed(1)
}

function fmtTarget (r: Row): string {
  if (r.target === undefined) return ''
  const v = r.unit === 'ratio' ? `${(r.target.value * 100).toFixed(0)}%` : r.target.value.toLocaleString('en-US')
  return `${r.target.op} ${v}${r.unit === 'ratio' ? '' : ` ${r.unit}`}`
}

function table (rows: Row[]): string {
  const head = ['section', 'metric', 'value', 'unit', 'target', 'met', 'runs']
  const body = rows.map(r => {
    const m = met(r)
    const runs = r.runs !== undefined && r.runs.length > 1 ? r.runs.map(x => fmtValue({ ...r, value: x })).join(' ') : ''
    return [r.section, r.metric + (r.note !== undefined ? ` (${r.note})` : ''), fmtValue(r), r.unit === 'ratio' ? '' : r.unit, fmtTarget(r), m === undefined ? '' : m ? 'yes' : 'NO', runs]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ').trimEnd()
  return [line(head), widths.map(w => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n')
}

function gitDescribe (): string {
  try {
    const head = execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['-C', repoRoot, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head} (src modified)` : head
  } catch {
    return 'unknown'
  }
}

/** Milliseconds of a fixed integer loop (median of 3): how fast this shared machine runs right now. */
function machineSpeedMs (): number {
  const times: number[] = []
  for (let r = 0; r < 3; r++) {
    const t = performance.now()
    let x = 0
    for (let i = 0; i < 5e7; i++) x = (x + i * 7) % 1000003
    if (x < 0) throw new Error('unreachable')
    times.push(performance.now() - t)
  }
  return times.sort((a, b) => a - b)[1]
}

async function main (): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  installCleanup()
  if (!existsSync(join(repoRoot, 'dist', 'countd.mjs'))) usage(`countd is not built (${countdBin} needs dist/countd.mjs): run npm run build first`)
  const repeats = o.repeats ?? 5
  mkdirSync(o.out, { recursive: true })
  const profileDir = join(o.out, 'profiles')
  if (o.profile) {
    mkdirSync(profileDir, { recursive: true })
    profileCountd(profileDir)
  }
  const t0 = Date.now()
  const repeatsOf = (id: number): number => o.repeats ?? (o.quick ? SECTIONS[id].quickRepeats : repeats)
  const loadAtStart = loadavg()
  const speedAtStart = machineSpeedMs()
  progress(`${o.quick ? 'quick' : 'full'} run, sections ${o.only.join(',')}, ${o.only.map(repeatsOf).join('/')} run(s) per figure, ${cpus().length} CPUs, load average ${loadAtStart.map(x => x.toFixed(2)).join(' ')}`)
  const load = await LoadGen.start()
  const results: SectionResult[] = []
  const failures: Array<{ id: number, error: string }> = []
  const profiles: Array<{ section: number, file: string, summary: string }> = []
  for (const id of o.only) {
    const s = SECTIONS[id]
    setSection(`[${id}] ${s.name}`)
    const before = new Set(o.profile ? readdirSync(profileDir) : [])
    const ts = Date.now()
    try {
      const ctx: Ctx = { quick: o.quick, repeats: repeatsOf(id), load }
      const res = await s.run(ctx)
      res.repeats = ctx.repeats
      results.push(res)
      progress(`done in ${((Date.now() - ts) / 1000).toFixed(1)} s`)
    } catch (err: any) {
      progress(`FAILED: ${err?.stack ?? err}`)
      failures.push({ id, error: String(err?.message ?? err) })
    }
    if (o.profile) {
      for (const f of readdirSync(profileDir).filter(f => !before.has(f) && f.endsWith('.cpuprofile'))) {
        try {
          profiles.push({ section: id, file: join(profileDir, f), summary: formatSummary(summarize(join(profileDir, f), 12)) })
        } catch (err) {
          progress(`could not read profile ${f}: ${String(err)}`)
        }
      }
    }
  }
  setSection('')
  load.close()
  agent.destroy()

  const rows = results.flatMap(r => r.rows)
  const meta = {
    generatedAt: new Date().toISOString(),
    mode: o.quick ? 'quick' : 'full',
    repeats: Object.fromEntries(o.only.map(id => [id, repeatsOf(id)])),
    commit: gitDescribe(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    loadavgAtStart: loadAtStart,
    loadavgAtEnd: loadavg(),
    /** ms of a fixed busy loop at start and end: this box's speed moves by 2-3x within hours; compare runs by it. */
    speedMsAtStart: speedAtStart,
    speedMsAtEnd: machineSpeedMs(),
    durationSec: (Date.now() - t0) / 1000
  }
  const outJson = join(o.out, 'results.json')
  writeFileSync(outJson, JSON.stringify({ meta, sections: results, failures, profiles: profiles.map(p => ({ section: p.section, file: p.file })) }, null, 2) + '\n')

  const panels: Panel[] = []
  const httpCurves = results.filter(r => r.id === 1 || r.id === 6).flatMap(r => r.curves ?? [])
  if (httpCurves.length > 0) panels.push({ title: 'HTTP increment latency, 50 connections (sections 1 and 6)', curves: httpCurves })
  const lag = results.find(r => r.id === 2)?.curves ?? []
  if (lag.length > 0) panels.push({ title: 'Replication lag, ack on one node -> visible on another (section 2)', curves: lag })
  const outSvg = join(o.out, 'latency.svg')
  if (panels.length > 0) writeFileSync(outSvg, renderLatencySvg(panels, `${meta.mode} run, ${meta.generatedAt.slice(0, 16)}Z, commit ${meta.commit}, ${meta.cpus} CPUs, Node ${meta.node}, load avg ${loadAtStart[0].toFixed(1)} at start`))

  const out: string[] = []
  out.push(`countd benchmark — ${meta.mode} run, commit ${meta.commit}, Node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel ?? '?'}), load average at start ${loadAtStart.map(x => x.toFixed(2)).join(' ')}, took ${meta.durationSec.toFixed(0)} s`)
  out.push(`Machine speed: a fixed busy loop took ${meta.speedMsAtStart.toFixed(0)} ms at the start and ${meta.speedMsAtEnd.toFixed(0)} ms at the end (lower is faster; figures of runs with different speeds do not compare).`)
  out.push(`Each figure is the median over the runs of its section (runs per section: ${results.map(r => `${r.id}: ${r.repeats}`).join(', ')}); per-run figures in the last column.`)
  if (o.quick) out.push('QUICK MODE: short runs; section 5 uses 100,000 names instead of 1,000,000, section 10 1,000,000 items instead of 10,000,000.')
  out.push('')
  out.push(table(rows))
  out.push('')
  out.push('Methods:')
  for (const r of results) out.push(`  [${r.id}] ${r.title} (${r.repeats} run(s)): ${r.method}`)
  for (const f of failures) out.push(`  [${f.id}] FAILED: ${f.error}`)
  if (profiles.length > 0) {
    out.push('')
    out.push('CPU profiles of the countd processes (node --cpu-prof):')
    for (const p of profiles) out.push(`  section ${p.section}, ${p.file}\n${p.summary.replace(/^/gm, '  ')}`)
  }
  const missed = rows.filter(r => met(r) === false)
  out.push('')
  out.push(`Targets: ${rows.filter(r => met(r) === true).length} met, ${missed.length} missed${missed.length > 0 ? `: ${missed.map(r => `${r.section.split(' ')[0]}/${r.metric.trim()}`).join('; ')}` : ''}.`)
  out.push(`Wrote ${outJson}${panels.length > 0 ? ` and ${outSvg}` : ''}.`)
  process.stdout.write(out.join('\n') + '\n')
  process.exit(failures.length > 0 ? 1 : 0)
}

main().catch(err => {
  process.stderr.write(`bench: ${err?.stack ?? err}\n`)
  process.exit(1)
})
