// Real multi-process clusters on loopback: the promises of SPEC §3-4.
import { strict as assert } from 'node:assert'
import { Cluster, CountdNode, inc, value, waitFor, portBlock } from '../../scripts/cluster.js'
import { join } from 'node:path'

async function allEqual (nodes: CountdNode[], name: string, want: bigint): Promise<boolean> {
  const vs = await Promise.all(nodes.map(async n => await value(n.url, name)))
  return vs.every(v => v === want)
}

async function consistent (url: string, name: string, timeoutSec = 2): Promise<{ status: number, body: string }> {
  const res = await fetch(`${url}/counter/${name}/consistent_value?timeout=${timeoutSec}`)
  return { status: res.status, body: await res.text() }
}

describe('cluster of 3 real countd processes', function () {
  this.timeout(120000)
  let cluster: Cluster

  before(async () => { cluster = await Cluster.start({ nodes: 3 }) })
  after(async () => { await cluster?.stop() })

  it('converges after increments on every node', async () => {
    const [a, b, c] = cluster.nodes
    await Promise.all([inc(a.url, 'conv', 1), inc(b.url, 'conv', 10), inc(c.url, 'conv', 100)])
    for (let i = 0; i < 20; i++) await inc(cluster.nodes[i % 3].url, 'conv', 1000)
    await waitFor(async () => await allEqual(cluster.nodes, 'conv', 20111n), 5000)
  })

  it('answers consistent_value with the exact total when every member is up', async () => {
    const [a, b, c] = cluster.nodes
    await inc(a.url, 'cons', 3)
    await inc(b.url, 'cons', 4)
    await inc(c.url, 'cons', 5)
    // Right after the acks: consistent reads must already include all of them.
    for (const n of cluster.nodes) assert.deepEqual(await consistent(n.url, 'cons'), { status: 200, body: '12' })
  })

  it('answers 503 with bestGuess when a member is paused, 200 again after', async () => {
    const [a, , c] = cluster.nodes
    await inc(a.url, 'pause', 2)
    c.pause()
    try {
      const r = await consistent(a.url, 'pause', 1)
      assert.equal(r.status, 503)
      const body = JSON.parse(r.body)
      assert.equal(body.bestGuess, 2)
      assert.deepEqual(body.unreachable, [c.peerId])
      assert.equal(typeof body.error, 'string')
    } finally {
      c.resume()
    }
    await waitFor(async () => (await consistent(a.url, 'pause')).status === 200, 10000, 200)
  })

  it('keeps values beyond 2^53 exact', async () => {
    const [a, b] = cluster.nodes
    const max = 9007199254740991n
    await inc(a.url, 'big', max)
    await inc(b.url, 'big', max)
    await inc(a.url, 'big', max)
    await waitFor(async () => await allEqual(cluster.nodes, 'big', 3n * max), 5000)
    const json = await (await fetch(`${b.url}/counter/big`)).text()
    assert.match(json, /"value":27021597764222973[^0-9]/)
    assert.equal(json.includes('27021597764222973'), true)
  })

  it('keeps every acked increment across kill -9 and catches up on what it missed', async () => {
    const [a, b, c] = cluster.nodes
    let acked = 0n
    for (let i = 0; i < 30; i++) { await inc(c.url, 'crash', 1); acked += 1n }
    // Fire a burst and kill mid-flight: only acked ones count for the check.
    const burst = Array.from({ length: 50 }, async () => await inc(c.url, 'crash', 1).then(() => { acked += 1n }, () => {}))
    await new Promise(resolve => setTimeout(resolve, 5))
    await c.kill('SIGKILL')
    await Promise.all(burst)
    for (let i = 0; i < 25; i++) { await inc(a.url, 'crash', 2); acked += 2n }
    await inc(b.url, 'crash', 7)
    acked += 7n
    await c.start()
    // Converged within 5 s, and nothing acknowledged is missing anywhere.
    await waitFor(async () => {
      const total = await value(a.url, 'crash')
      return total >= acked && await allEqual(cluster.nodes, 'crash', total)
    }, 5000)
    assert.ok(await value(c.url, 'crash') <= acked + 50n, 'no invention')
  })

  it('a node that joins through one member learns every member', async () => {
    const base = portBlock(2)
    const late = new CountdNode({
      name: 'late',
      dataDir: join(cluster.dir, 'late'),
      httpPort: base,
      p2pPort: base + 1,
      peers: [cluster.nodes[2].hostPort]
    })
    await late.start()
    try {
      await inc(cluster.nodes[0].url, 'late', 5)
      await waitFor(async () => {
        const s = await (await fetch(`${late.url}/status`)).json() as { peers: string[], members: Array<{ id: string }> }
        const ids = new Set(s.members.map(m => m.id))
        return cluster.nodes.every(n => ids.has(n.peerId)) && s.peers.length >= 3
      }, 10000, 100)
      await waitFor(async () => await value(late.url, 'late') === 5n, 5000)
      assert.deepEqual(await consistent(late.url, 'conv'), { status: 200, body: '20111' })
    } finally {
      await late.kill()
    }
  })
})

describe('membership survives restarts', function () {
  this.timeout(90000)

  it('a restarted node without --peers redials the members it knew', async () => {
    const cluster = await Cluster.start({ nodes: 2 })
    try {
      const [a, b] = cluster.nodes
      await inc(a.url, 'm', 1)
      await waitFor(async () => await value(b.url, 'm') === 1n, 5000)
      await b.kill()
      b.opts.peers = []
      await inc(a.url, 'm', 1)
      await b.start()
      await waitFor(async () => await value(b.url, 'm') === 2n, 8000)
    } finally {
      await cluster.stop()
    }
  })

  it('a wiped node comes back as a new replica, catches up and may retire the old id', async () => {
    const cluster = await Cluster.start({ nodes: 2 })
    try {
      const [a, b] = cluster.nodes
      await inc(b.url, 'w', 4)
      await waitFor(async () => await value(a.url, 'w') === 4n, 5000)
      const oldId = b.peerId
      await b.kill()
      b.wipe()
      await b.start()
      assert.notEqual(b.peerId, oldId)
      await waitFor(async () => await value(b.url, 'w') === 4n, 8000)
      await inc(b.url, 'w', 1)
      await waitFor(async () => await value(a.url, 'w') === 5n, 5000)
      // The old id is still a member: consistent reads cannot reach it ...
      assert.equal((await consistent(a.url, 'w', 1)).status, 503)
      // ... until an operator retires it; its past increments stay counted.
      const del = await fetch(`${a.url}/members/${oldId}`, { method: 'DELETE' })
      assert.equal(del.status, 204)
      assert.deepEqual(await consistent(a.url, 'w'), { status: 200, body: '5' })
    } finally {
      await cluster.stop()
    }
  })
})

describe('POST /config bootstrap (challenge style)', function () {
  this.timeout(60000)

  it('joins nodes started without peers, by p2p host:port or by HTTP address', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const dir = mkdtempSync(join(tmpdir(), 'countd-config-'))
    const base = portBlock(6)
    const nodes = [0, 1, 2].map(i => new CountdNode({ name: `c${i}`, dataDir: join(dir, `c${i}`), httpPort: base + i, p2pPort: base + 3 + i }))
    try {
      await Promise.all(nodes.map(async n => await n.start()))
      const [a, b, c] = nodes
      const post = async (n: CountdNode, actors: string[]): Promise<number> =>
        (await fetch(`${n.url}/config`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ actors }) })).status
      assert.equal(await post(b, [a.hostPort]), 204)
      assert.equal(await post(c, [`127.0.0.1:${a.opts.httpPort}`]), 204)
      await inc(a.url, 'cfg', 2)
      await inc(c.url, 'cfg', 3)
      await waitFor(async () => await allEqual(nodes, 'cfg', 5n), 5000)
      assert.deepEqual(await consistent(b.url, 'cfg'), { status: 200, body: '5' })
    } finally {
      await Promise.all(nodes.map(async n => await n.kill()))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
