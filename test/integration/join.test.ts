// When does a node accept writes? Once a member is known to know its replica
// id (README "When a node accepts writes"). Issue 16: the first node of a
// cluster kept refusing writes after its only peer died right after a large
// first sync, because it counted only fully completed exchanges.
import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CountdNode, inc, waitFor, portBlock } from '../../scripts/cluster.js'

const NAMES = 100000
const BATCH = 4000

async function status (n: CountdNode): Promise<{ counters: number }> {
  return await (await fetch(`${n.url}/status`, { signal: AbortSignal.timeout(5000) })).json() as { counters: number }
}

describe('join gate (real processes)', function () {
  this.timeout(120000)
  let dir: string
  let nodes: CountdNode[] = []

  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-join-')) })
  afterEach(async () => {
    await Promise.all(nodes.map(async n => await n.kill().catch(() => {})))
    nodes = []
    rmSync(dir, { recursive: true, force: true })
  })

  it('the first node keeps accepting writes after a peer that joined with a large first sync is killed', async () => {
    const base = portBlock(4)
    const a = new CountdNode({ name: 'a', dataDir: join(dir, 'a'), httpPort: base, p2pPort: base + 1 })
    const b = new CountdNode({ name: 'b', dataDir: join(dir, 'b'), httpPort: base + 2, p2pPort: base + 3, peers: [`127.0.0.1:${base + 1}`] })
    nodes = [a, b]
    await a.start()
    for (let i = 0; i < NAMES; i += BATCH) {
      const body: Record<string, number> = {}
      for (let k = i; k < i + BATCH; k++) body[`name-${k}`] = 1
      const res = await fetch(`${a.url}/counters`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      assert.equal(res.status, 200, await res.text())
    }
    await b.start(60000)
    // B reports every counter, then dies at once.
    await waitFor(async () => (await status(b)).counters >= NAMES, 60000, 50)
    await b.kill('SIGKILL')
    // A stays writable: B knew A's replica id.
    assert.equal(await inc(a.url, 'after-b-died', 7), 7n)
    await b.start(60000)
    const res = await fetch(`${b.url}/counter/after-b-died/consistent_value?timeout=10`)
    assert.deepEqual({ status: res.status, body: await res.text() }, { status: 200, body: '7' })
  })
})
