// countd's Redis protocol against the real Redis, same machine, back to back
// (issue 12): Redis runs with appendfsync always so both ack only durable
// writes. Needs Debian's redis-server and redis-tools; installs them with
// apt-get when missing (and says so).
// Usage: node dist/scripts/bench/redis.js redis://127.0.0.1:6380 [requests]
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Ctx, Row, SectionResult } from './types.js'
import { makeNode, median, portBlock, progress, removeDir, stopNode, tempDir } from './util.js'

export interface RedisBenchRow { test: string, redis: number, countd: number, ratio: number }

const REDIS_PORT = 23900

function have (cmd: string): boolean {
  try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true } catch { return false }
}

export function ensureRedis (log: (s: string) => void = console.log): void {
  if (have('redis-server') && have('redis-benchmark')) return
  log('redis-server / redis-benchmark missing: installing Debian packages redis-server redis-tools with apt-get')
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server', 'redis-tools'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
}

/** redis-benchmark's requests per second for one custom command. */
function benchmark (host: string, port: number, n: number, pipeline: number, command: string[]): number {
  let out: string
  try {
    out = execFileSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '50', '-n', String(n), '-P', String(pipeline), '-r', '1000000', '-q', '--csv', ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 })
  } catch (err: any) {
    throw new Error(`redis-benchmark against ${host}:${port} failed (${String(err.status ?? err.signal)}): ${String(err.stderr ?? '').trim().slice(0, 300)}`)
  }
  // --csv: "test","rps",...
  const line = out.trim().split('\n').filter(l => !l.startsWith('"test"')).pop() ?? ''
  return Number(line.split(',')[1]?.replace(/"/g, ''))
}

async function startRedis (): Promise<{ proc: ChildProcess, dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'countd-bench-redis-'))
  const proc = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' })
  for (let i = 0; i < 50; i++) {
    try { execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'PING'], { stdio: 'ignore' }); return { proc, dir } } catch { await new Promise(resolve => setTimeout(resolve, 100)) }
  }
  proc.kill()
  throw new Error('redis-server did not start')
}

/** Run INCR (no pipeline, -P 16) and SADD with random members against Redis and countd's RESP endpoint. */
export async function redisComparison (countdUrl: string, requests = 20000): Promise<RedisBenchRow[]> {
  ensureRedis()
  const u = new URL(countdUrl)
  const { proc, dir } = await startRedis()
  const rows: RedisBenchRow[] = []
  try {
    const tests: Array<[string, number, string[]]> = [
      ['INCR, 50 clients, no pipeline', 1, ['INCR', 'bench.__rand_int__']],
      ['INCR, 50 clients, -P 16', 16, ['INCR', 'bench.__rand_int__']],
      ['SADD random members, 50 clients, no pipeline', 1, ['SADD', 'benchset', '__rand_int__']],
      ['SADD random members, 50 clients, -P 16', 16, ['SADD', 'benchset', '__rand_int__']]
    ]
    for (const [test, pipeline, command] of tests) {
      const n = pipeline === 1 ? requests : requests * 8
      const redis = benchmark('127.0.0.1', REDIS_PORT, n, pipeline, command)
      const countd = benchmark(u.hostname, Number(u.port), n, pipeline, command)
      rows.push({ test, redis, countd, ratio: countd / redis })
    }
  } finally {
    // Wait for the exit: the next run starts another redis-server on this port.
    const exited = new Promise(resolve => proc.once('exit', resolve))
    proc.kill()
    await exited
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.argv[2]
  if (url === undefined) { console.error('usage: redis.js redis://HOST:PORT [requests]'); process.exit(2) }
  const rows = await redisComparison(url, Number(process.argv[3] ?? 20000))
  console.log('| test | Redis (appendfsync always) req/s | countd req/s | countd / Redis |')
  console.log('|---|---:|---:|---:|')
  for (const r of rows) console.log(`| ${r.test} | ${Math.round(r.redis)} | ${Math.round(r.countd)} | ${r.ratio.toFixed(2)} |`)
}

/** Bench section 9: countd's Redis protocol (one node, durable acks) against redis-server with appendfsync always. */
export async function redisSection (ctx: Ctx): Promise<SectionResult> {
  const dir = tempDir('s9')
  const port = await portBlock(1)
  const node = await makeNode('r1', join(dir, 'r1'), [], ['--resp', `127.0.0.1:${port}`])
  const S = '9 Redis protocol'
  try {
    await node.start()
    // A server that has been up for a while has its hot paths compiled: warm
    // countd's up (unmeasured) before comparing it with a C server.
    progress('warm-up: 20,000 INCR and SADD against countd (not measured)')
    for (const command of [['INCR', 'warmup.__rand_int__'], ['SADD', 'warmupset', '__rand_int__']]) {
      benchmark('127.0.0.1', port, 20000, 1, command)
      benchmark('127.0.0.1', port, 20000, 16, command)
    }
    const runs: RedisBenchRow[][] = []
    for (let r = 0; r < ctx.repeats; r++) {
      progress(`run ${r + 1}/${ctx.repeats}: redis-benchmark against redis-server and countd`)
      runs.push(await redisComparison(`redis://127.0.0.1:${port}`, ctx.quick ? 10000 : 50000))
    }
    const rows: Row[] = []
    for (let t = 0; t < runs[0].length; t++) {
      const test = runs[0][t].test
      const countd = runs.map(r => r[t].countd)
      const redis = runs.map(r => r[t].redis)
      const ratio = runs.map(r => r[t].ratio)
      const pipelined = test.includes('-P 16')
      rows.push({ section: S, metric: `countd ${test}`, value: median(countd), unit: 'req/s', runs: countd, ...(pipelined ? { target: { op: '>=', value: 300000 } } : {}) })
      rows.push({ section: S, metric: `  redis-server ${test}`, value: median(redis), unit: 'req/s', runs: redis })
      rows.push({ section: S, metric: `  ratio countd / Redis, ${test}`, value: median(ratio), unit: 'ratio', runs: ratio, ...(pipelined ? {} : { target: { op: '>=', value: 0.5 } }) })
    }
    return {
      id: 9,
      title: 'Redis protocol vs redis-server',
      method: 'redis-benchmark -c 50 (-P 16 where noted) with random keys/members (-r 1000000) against Debian\'s redis-server (--appendonly yes --appendfsync always: durable acks, like countd) and one countd node (--resp), back to back in each run, after an unmeasured warm-up of countd (20,000 INCR and SADD, with and without -P 16); key names use "." since countd names do not allow ":".',
      rows
    }
  } finally {
    await stopNode(node)
    removeDir(dir)
  }
}
