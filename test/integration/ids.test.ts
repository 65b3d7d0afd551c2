// IDs on real processes (SPEC §6): five nodes issuing 1,000,000 IDs
// concurrently never repeat one; kill -9 mid-burst restarts above every ID
// issued; a clock jumped back waits or refuses, never repeats; a wiped node
// comes back on another slot; a node that joins while a member is
// unreachable answers 503 until every member confirmed its slot.
import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, CountdNode, waitFor, portBlock } from '../../scripts/cluster.js'
import { decodeId, ID_EPOCH_MS } from '../../src/ids/snowflake.js'

async function ids (url: string, count: number): Promise<{ status: number, ids: bigint[], body: string }> {
  const res = await fetch(`${url}/ids?count=${count}`, { signal: AbortSignal.timeout(20000) })
  const body = await res.text()
  return { status: res.status, ids: res.status === 200 ? (JSON.parse(body) as { ids: string[] }).ids.map(BigInt) : [], body }
}

describe('IDs on a real cluster', function () {
  this.timeout(120000)
  let dir: string
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-ids-')) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  it('five nodes, concurrent clients, 1,000,000 IDs: unique, increasing per node, time within 1 s, distinct slots', async () => {
    const cluster = await Cluster.start({ nodes: 5, dir })
    try {
      await waitFor(async () => (await Promise.all(cluster.nodes.map(async n => (await ids(n.url, 1)).status))).every(s => s === 200), 20000, 100)
      const perNode = cluster.nodes.map(() => [] as bigint[])
      await Promise.all(cluster.nodes.flatMap((n, i) => [0, 1].map(async () => {
        for (let k = 0; k < 10; k++) {
          const before = Date.now()
          const r = await ids(n.url, 10000)
          assert.equal(r.status, 200, r.body)
          const after = Date.now()
          let last = -1n
          for (const id of r.ids) {
            assert.ok(id > last)
            last = id
            assert.ok(ID_EPOCH_MS + decodeId(id).ms <= after + 1000, 'never more than 1 s ahead')
          }
          assert.ok(ID_EPOCH_MS + decodeId(r.ids[0]).ms >= before - 5000)
          perNode[i].push(...r.ids)
        }
      })))
      const all = new Set<bigint>()
      for (const list of perNode) for (const id of list) all.add(id)
      assert.equal(all.size, 1000000, 'no duplicate among 1,000,000 IDs')
      const slots = perNode.map(list => new Set(list.map(id => decodeId(id).slot)))
      for (const s of slots) assert.equal(s.size, 1, 'one slot per node')
      assert.equal(new Set(slots.map(s => [...s][0])).size, 5, 'distinct slots')
    } finally {
      await cluster.stop()
    }
  })

  it('kill -9 mid-burst: the next IDs are above every one issued; a clock set back waits or refuses; a wiped node takes a new slot', async () => {
    const base = portBlock(2)
    const clockFile = join(dir, 'clock')
    const node = new CountdNode({ name: 'k', dataDir: join(dir, 'k'), httpPort: base, p2pPort: base + 1, env: { COUNTD_TEST_CLOCK_FILE: clockFile } })
    await node.start()
    try {
      let max = 0n
      const burst = Promise.all(Array.from({ length: 4 }, async () => {
        for (;;) {
          const r = await ids(node.url, 5000).catch(() => undefined)
          if (r === undefined || r.status !== 200) return
          for (const id of r.ids) if (id > max) max = id
        }
      }))
      await new Promise(resolve => setTimeout(resolve, 700))
      await node.kill('SIGKILL')
      await burst
      assert.ok(max > 0n)
      await node.start()
      const after = await ids(node.url, 10)
      assert.equal(after.status, 200, after.body)
      assert.ok(after.ids[0] > max, 'above every ID issued before the kill')
      const slot = decodeId(after.ids[0]).slot
      // Clock back 1.5 s: absorbed (runs ahead up to 1 s, then waits), no repeat.
      writeFileSync(clockFile, '-1500')
      await new Promise(resolve => setTimeout(resolve, 100))
      const back = await ids(node.url, 10)
      assert.equal(back.status, 200, back.body)
      assert.ok(back.ids[0] > after.ids[after.ids.length - 1])
      // Clock back a minute: refused with 503 JSON, never a duplicate.
      writeFileSync(clockFile, '-60000')
      await new Promise(resolve => setTimeout(resolve, 100))
      const far = await ids(node.url, 10)
      assert.equal(far.status, 503)
      assert.match(JSON.parse(far.body).error, /clock/)
      writeFileSync(clockFile, '0')
      await new Promise(resolve => setTimeout(resolve, 100))
      const again = await ids(node.url, 10)
      assert.equal(again.status, 200)
      assert.ok(again.ids[0] > back.ids[back.ids.length - 1])
      // A wiped node is a new replica id: it never reuses its old slot.
      await node.kill('SIGKILL')
      node.wipe()
      await node.start()
      const wiped = await ids(node.url, 1)
      assert.equal(wiped.status, 200, wiped.body)
      assert.notEqual(decodeId(wiped.ids[0]).slot, slot)
    } finally {
      await node.kill().catch(() => {})
    }
  })

  it('a node that joins while a member is unreachable answers 503 until every member confirmed its slot', async () => {
    const cluster = await Cluster.start({ nodes: 2, dir })
    const base = portBlock(2)
    const late = new CountdNode({ name: 'late', dataDir: join(dir, 'late'), httpPort: base, p2pPort: base + 1, peers: [cluster.nodes[0].hostPort] })
    try {
      await waitFor(async () => (await ids(cluster.nodes[1].url, 1)).status === 200, 20000, 100)
      cluster.nodes[1].pause()
      await late.start()
      // n2 is a member but cannot confirm: no IDs yet.
      await new Promise(resolve => setTimeout(resolve, 1000))
      const waiting = await ids(late.url, 1)
      assert.equal(waiting.status, 503)
      assert.match(JSON.parse(waiting.body).error, /not yet confirmed/)
      cluster.nodes[1].resume()
      await waitFor(async () => (await ids(late.url, 1)).status === 200, 20000, 100)
    } finally {
      cluster.nodes[1].resume()
      await late.kill().catch(() => {})
      await cluster.stop()
    }
  })
})
