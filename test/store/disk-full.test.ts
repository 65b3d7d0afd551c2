// A full disk (SPEC §2, issue 14): a real tmpfs as the data dir, filled up
// while countd runs. The write that cannot be made durable gets 507, is not
// counted, reads keep working, the condition is logged once, and writes
// resume once space is freed, without a restart; nothing acked is lost.
import { strict as assert } from 'node:assert'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CountdNode, value, waitFor, portBlock } from '../../scripts/cluster.js'

/** Fill the filesystem of `dir` with one file until ENOSPC. */
function fill (file: string): void {
  const fd = openSync(file, 'w')
  const chunk = Buffer.alloc(64 * 1024, 7)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (err: any) {
    if (err.code !== 'ENOSPC') throw err
  }
  // The last partial chunk: fill byte by byte-ish to the very end.
  const small = Buffer.alloc(512, 7)
  try { for (;;) writeSync(fd, small) } catch {}
  closeSync(fd)
}

async function post (url: string, name: string, by: number): Promise<{ status: number, body: string }> {
  const res = await fetch(`${url}/counter/${name}`, { method: 'POST', body: String(by), signal: AbortSignal.timeout(10000) })
  return { status: res.status, body: await res.text() }
}

/**
 * A tmpfs of `size` for the enclosing describe block (skipped without root;
 * CI runs as root); the node `running()` names is killed before the unmount.
 */
function tmpfsFor (size: string, running: () => CountdNode | undefined): { dir: string } {
  const disk = { dir: '' }
  before(function () {
    disk.dir = mkdtempSync(join(tmpdir(), 'countd-full-'))
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', disk.dir], { stdio: 'ignore' })
    } catch {
      rmSync(disk.dir, { recursive: true, force: true })
      disk.dir = ''
      this.skip()
    }
  })
  after(async () => {
    await running()?.kill().catch(() => {})
    if (disk.dir !== '') {
      try { execFileSync('umount', [disk.dir], { stdio: 'ignore' }) } catch {}
      rmSync(disk.dir, { recursive: true, force: true })
    }
  })
  return disk
}

describe('a full disk (real tmpfs)', function () {
  this.timeout(90000)
  let node: CountdNode | undefined
  const disk = tmpfsFor('4m', () => node)

  it('answers 507, counts nothing, keeps reads, logs once and resumes when space is freed', async () => {
    const base = portBlock(2)
    const lines: string[] = []
    node = new CountdNode({ name: 'full', dataDir: join(disk.dir, 'data'), httpPort: base, p2pPort: base + 1, onLine: l => { lines.push(l) } })
    await node.start()
    for (let i = 0; i < 5; i++) assert.equal((await post(node.url, 'hits', 2)).status, 200)
    const filler = join(disk.dir, 'filler')
    fill(filler)
    // Writes still fit in the log file's last allocated page until it is
    // full; from the first refusal on, every write is refused.
    const long = 'x'.repeat(190)
    let refused = 0
    for (let i = 0; i < 400 && refused < 20; i++) {
      const r = await post(node.url, refused === 0 ? `${long}${i % 10}` : 'hits', 1)
      if (r.status === 200) {
        assert.equal(refused, 0, 'no write is accepted between refusals while the disk is full')
        continue
      }
      assert.equal(r.status, 507, r.body)
      assert.match(JSON.parse(r.body).error, /disk full/)
      refused++
    }
    assert.equal(refused, 20, 'a full disk refuses writes')
    const shown = await value(node.url, 'hits')
    assert.equal(shown, 10n, 'refused writes are not counted')
    const cr = await fetch(`${node.url}/counter/hits/consistent_value`)
    assert.equal(cr.status, 200)
    assert.equal(await cr.text(), shown.toString())
    assert.equal((await fetch(`${node.url}/health`)).status, 200)
    assert.equal(lines.filter(l => l.includes('writes are failing')).length, 1, 'the condition is logged once')
    // Space comes back: writes resume without a restart.
    rmSync(filler)
    await waitFor(async () => (await post(node!.url, 'hits', 1)).status === 200, 15000, 200)
    const after = await value(node.url, 'hits')
    assert.ok(after > shown)
    assert.ok(lines.some(l => l.includes('writes work again')))
    // Nothing acknowledged is lost across kill -9.
    await node.kill('SIGKILL')
    await node.start()
    assert.equal(await value(node.url, 'hits'), after)
  })
})

describe('a full disk after a snapshot taken while running (real tmpfs)', function () {
  this.timeout(90000)
  let node: CountdNode | undefined
  // Room for the snapshot (~9 MB: the digest tree) before the filler takes the rest.
  const disk = tmpfsFor('32m', () => node)

  it('a write refused by the full disk does not leave the snapshot valid: what is acked after it survives kill -9', async () => {
    const base = portBlock(2)
    const lines: string[] = []
    node = new CountdNode({ name: 'fullsnap', dataDir: join(disk.dir, 'data'), httpPort: base, p2pPort: base + 1, logLevel: 'debug', args: ['--quiet-snapshot-entries', '1'], onLine: l => { lines.push(l) } })
    await node.start()
    for (let i = 0; i < 3; i++) assert.equal((await post(node.url, 'hits', 2)).status, 200)
    await waitFor(() => lines.some(l => /"saved":true.*"msg":"quiet snapshot"/.test(l)), 15000, 50)
    const filler = join(disk.dir, 'filler')
    fill(filler)
    // The first entry write after the snapshot is the one refused: a batch
    // far bigger than the slack in the journal's last page.
    const names = Array.from({ length: 2000 }, (_, i) => `${'x'.repeat(190)}${i}`)
    const big = await fetch(`${node.url}/counters`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(Object.fromEntries(names.map(n => [n, 1]))) })
    assert.equal(big.status, 507, await big.text())
    rmSync(filler)
    await waitFor(async () => (await post(node!.url, 'hits', 1)).status === 200, 15000, 200)
    const acked = await value(node.url, 'hits')
    await node.kill('SIGKILL')
    await node.start()
    assert.equal(await value(node.url, 'hits'), acked, 'the acknowledged write is there (the start did not take the older snapshot)')
  })
})
