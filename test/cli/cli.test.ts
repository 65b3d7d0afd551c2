// The CLI as a user runs it: real processes, exit codes, one-line errors.
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, CountdNode, countdBin, portBlock } from '../../scripts/cluster.js'

interface Run { code: number | null, stdout: string, stderr: string, ms: number }

async function countd (args: string[], env: Record<string, string> = {}, timeoutMs = 20000, stdin?: string): Promise<Run> {
  const started = Date.now()
  return await new Promise(resolve => {
    const p = spawn(process.execPath, [countdBin, ...args], { env: { ...process.env, ...env } })
    p.stdin.end(stdin)
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', d => { stdout += d })
    p.stderr.on('data', d => { stderr += d })
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs)
    p.on('exit', code => { clearTimeout(t); resolve({ code, stdout, stderr, ms: Date.now() - started }) })
  })
}

function oneLine (r: Run): void {
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line on stderr, got: ${r.stderr}`)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
}

describe('countd CLI', function () {
  this.timeout(60000)
  let cluster: Cluster
  let api: string

  before(async () => {
    cluster = await Cluster.start({ nodes: 2 })
    api = cluster.nodes[0].url
  })
  after(async () => { await cluster?.stop() })

  it('inc prints the new value; get reads it back, also --consistent and via COUNTD_API', async () => {
    assert.deepEqual(await countd(['inc', 'clicks', '--api', api]).then(r => [r.code, r.stdout]), [0, '1\n'])
    assert.deepEqual(await countd(['inc', 'clicks', '--by', '41', '--api', api]).then(r => [r.code, r.stdout]), [0, '42\n'])
    assert.deepEqual(await countd(['get', 'clicks', '--api', api]).then(r => [r.code, r.stdout]), [0, '42\n'])
    const other = cluster.nodes[1].url
    assert.deepEqual(await countd(['get', 'clicks', '--consistent'], { COUNTD_API: other }).then(r => [r.code, r.stdout]), [0, '42\n'])
    const status = await countd(['status', '--json', '--api', api])
    assert.equal(status.code, 0)
    assert.equal(JSON.parse(status.stdout).id, cluster.nodes[0].peerId)
  })

  it('bin/countd runs as a program (its first line gives node its flags), as npm link and the README run it', async () => {
    const r = await new Promise<{ code: number | null, out: string }>(resolve => {
      const p = spawn(countdBin, ['--version'])
      let out = ''
      p.stdout.on('data', d => { out += d })
      p.on('exit', code => { resolve({ code, out }) })
    })
    assert.equal(r.code, 0)
    assert.match(r.out, /^\d+\.\d+\.\d+\n$/)
  })

  it('usage errors exit 2 with one line; runtime errors exit 1', async () => {
    for (const args of [['inc', 'bad name', '--api', api], ['inc', 'x', '--by', '0', '--api', api], ['inc', 'x', '--by', '1.5'], ['start', '--bogus'], ['start', '--http', 'nope'], ['get', 'x', '--api', 'not a url'], ['frobnicate']]) {
      const r = await countd(args)
      assert.equal(r.code, 2, `${args.join(' ')} -> ${r.code} ${r.stderr}`)
      oneLine(r)
    }
    const down = await countd(['get', 'x', '--api', `http://127.0.0.1:${portBlock(1)}`])
    assert.equal(down.code, 1)
    oneLine(down)
    assert.match(down.stderr, /cannot reach/)
  })

  it('refuses a data dir in use and a busy port with one clear line', async () => {
    const busy = cluster.nodes[0]
    const base = portBlock(2)
    const locked = await countd(['start', '--data-dir', busy.opts.dataDir, '--http', `127.0.0.1:${base}`, '--listen', `/ip4/127.0.0.1/tcp/${base + 1}`])
    assert.equal(locked.code, 1)
    oneLine(locked)
    assert.match(locked.stderr, /locked/)
    const dir = mkdtempSync(join(tmpdir(), 'countd-cli-'))
    try {
      const port = await countd(['start', '--data-dir', dir, '--http', `127.0.0.1:${busy.opts.httpPort}`, '--listen', `/ip4/127.0.0.1/tcp/${base + 1}`])
      assert.equal(port.code, 1)
      oneLine(port)
      assert.match(port.stderr, /in use/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('SIGTERM stops a node cleanly with exit 0 within 5 s, keeping its data', async () => {
    const base = portBlock(2)
    const dir = mkdtempSync(join(tmpdir(), 'countd-cli-'))
    const node = new CountdNode({ name: 'term', dataDir: dir, httpPort: base, p2pPort: base + 1 })
    try {
      await node.start()
      await fetch(`${node.url}/counter/kept`, { method: 'POST', body: '3' })
      const t = Date.now()
      assert.equal(await node.stop(), 0)
      assert.ok(Date.now() - t < 5000)
      await node.start()
      assert.equal(await (await fetch(`${node.url}/counter/kept/value`)).text(), '3')
    } finally {
      await node.kill()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('items add (arguments or stdin) prints totals; items count prints the count', async () => {
    assert.deepEqual(await countd(['items', 'add', 'cli-t', 'a', 'b', 'a', '--api', api]).then(r => [r.code, r.stdout, r.stderr]), [0, 'accepted 3, added 2\n', ''])
    const many = Array.from({ length: 25000 }, (_, i) => `id-${i % 20000}`).join('\n') + '\n'
    const piped = await countd(['items', 'add', 'cli-t', '--api', api], {}, 60000, many)
    assert.deepEqual([piped.code, piped.stdout], [0, 'accepted 25000, added 20000\n'], piped.stderr)
    assert.deepEqual(await countd(['items', 'count', 'cli-t', '--api', api]).then(r => [r.code, r.stdout]), [0, '20002\n'])
    assert.deepEqual(await countd(['items', 'count', 'cli-t', '--consistent', '--timeout', '5', '--api', api]).then(r => [r.code, r.stdout]), [0, '20002\n'])
    assert.deepEqual(await countd(['items', 'count', 'never-seen', '--api', api]).then(r => [r.code, r.stdout]), [0, '0\n'])
  })

  it('id prints N increasing IDs one a line, fetched in chunks of 10,000', async () => {
    const r = await countd(['id', '-n', '10005', '--api', api], {}, 60000)
    assert.equal(r.code, 0, r.stderr)
    const ids = r.stdout.trimEnd().split('\n')
    assert.equal(ids.length, 10005)
    for (let i = 1; i < ids.length; i++) assert.ok(BigInt(ids[i]) > BigInt(ids[i - 1]), `line ${i + 1}`)
    assert.match((await countd(['id', '--api', api])).stdout, /^[0-9]+\n$/)
  })

  it('items and id usage errors exit 2 with one line and send nothing', async () => {
    for (const [args, stdin] of [
      [['items', 'add', 'bad tenant', 'x', '--api', api]],
      [['items', 'add', 'cli-u', 'ok', '', '--api', api]],
      [['items', 'add', 'cli-u', '--api', api], 'ok\nbad\u0001id\n'],
      [['items', 'add', 'cli-u', '--api', api], ''],
      [['items', 'count', 'bad tenant', '--api', api]],
      [['items', 'count', 'cli-u', '--timeout', '0', '--api', api]],
      [['id', '-n', '0', '--api', api]],
      [['id', '-n', 'x', '--api', api]]
    ] as Array<[string[], string | undefined]>) {
      const r = await countd(args, {}, 20000, stdin)
      assert.equal(r.code, 2, `${args.join(' ')} -> ${r.code} ${r.stderr}`)
      oneLine(r)
    }
    assert.equal((await countd(['items', 'count', 'cli-u', '--api', api])).stdout, '0\n', 'nothing was added')
  })

  it('--version prints the package version', async () => {
    const r = await countd(['--version'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/)
  })
})

describe('countd start refuses to expose an unauthenticated API (SPEC §1)', function () {
  this.timeout(60000)
  const dir = mkdtempSync(join(tmpdir(), 'countd-refuse-'))
  after(() => { rmSync(dir, { recursive: true, force: true }) })

  for (const [what, args, env] of [
    ['--http 0.0.0.0', ['--http', `0.0.0.0:${portBlock(1)}`], {}],
    ['COUNTD_HTTP beyond loopback', [], { COUNTD_HTTP: `0.0.0.0:${portBlock(1)}` }],
    ['--resp 0.0.0.0', ['--resp', `0.0.0.0:${portBlock(1)}`], {}],
    ['COUNTD_ALLOW_UNAUTHENTICATED=0', ['--http', `0.0.0.0:${portBlock(1)}`], { COUNTD_ALLOW_UNAUTHENTICATED: '0' }]
  ] as Array<[string, string[], Record<string, string>]>) {
    it(`exits 2 with one line naming both remedies: ${what}`, async () => {
      const r = await countd(['start', '--data-dir', join(dir, 'x'), '--listen', `/ip4/127.0.0.1/tcp/${portBlock(1)}`, ...args], env)
      assert.equal(r.code, 2, r.stderr)
      oneLine(r)
      assert.match(r.stderr, /--api-token/)
      assert.match(r.stderr, /--allow-unauthenticated/)
    })
  }

  it('starts beyond loopback with a token of any length, which every route but /health then needs', async () => {
    const node = new CountdNode({ name: 'tok', dataDir: join(dir, 'tok'), httpHost: '0.0.0.0', httpPort: portBlock(1), p2pPort: portBlock(1), env: { COUNTD_API_TOKEN: 's3cret' } })
    try {
      await node.start()
      const url = `http://127.0.0.1:${node.opts.httpPort}`
      assert.equal((await fetch(`${url}/health`)).status, 200)
      assert.equal((await fetch(`${url}/status`)).status, 401)
      assert.equal((await fetch(`${url}/status`, { headers: { Authorization: 'bearer s3cret' } })).status, 200)
    } finally {
      await node.kill('SIGKILL')
    }
  })

  it('starts with --allow-unauthenticated (or COUNTD_ALLOW_UNAUTHENTICATED=1)', async () => {
    const node = new CountdNode({ name: 'open', dataDir: join(dir, 'open'), httpHost: '0.0.0.0', httpPort: portBlock(1), p2pPort: portBlock(1), env: { COUNTD_ALLOW_UNAUTHENTICATED: '1' } })
    try {
      await node.start()
      assert.equal((await fetch(`http://127.0.0.1:${node.opts.httpPort}/health`)).status, 200)
    } finally {
      await node.kill('SIGKILL')
    }
  })
})
