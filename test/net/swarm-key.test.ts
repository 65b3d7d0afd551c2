// Private networks (--swarm-key) with real processes: only key holders talk.
import { strict as assert } from 'node:assert'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CountdNode, countdBin, inc, value, waitFor, portBlock } from '../../scripts/cluster.js'

describe('--swarm-key (private network)', function () {
  this.timeout(60000)
  const dir = mkdtempSync(join(tmpdir(), 'countd-pnet-'))
  const nodes: CountdNode[] = []
  after(async () => {
    await Promise.all(nodes.map(async n => await n.kill()))
    rmSync(dir, { recursive: true, force: true })
  })

  it('nodes with the key replicate; a node without it or with another key cannot join', async () => {
    const key1 = join(dir, 'k1')
    const key2 = join(dir, 'k2')
    execFileSync(process.execPath, [countdBin, 'keygen', '--out', key1], { stdio: 'ignore' })
    execFileSync(process.execPath, [countdBin, 'keygen', '--out', key2], { stdio: 'ignore' })
    const base = portBlock(8)
    const mk = (i: number, args: string[], peers: string[] = []): CountdNode => {
      const n = new CountdNode({ name: `p${i}`, dataDir: join(dir, `p${i}`), httpPort: base + i, p2pPort: base + 4 + i, args, peers })
      nodes.push(n)
      return n
    }
    const a = mk(0, ['--swarm-key', key1])
    await a.start()
    const b = mk(1, ['--swarm-key', key1], [a.hostPort])
    const noKey = mk(2, [], [a.hostPort])
    const otherKey = mk(3, ['--swarm-key', key2], [a.hostPort])
    await Promise.all([b.start(), noKey.start(), otherKey.start()])
    await inc(a.url, 'secret', 7)
    await waitFor(async () => await value(b.url, 'secret') === 7n, 5000)
    // Give the outsiders time to try (they redial with backoff), then check.
    await new Promise(resolve => setTimeout(resolve, 2000))
    for (const outsider of [noKey, otherKey]) {
      assert.equal(await value(outsider.url, 'secret'), 0n)
      const status = await (await fetch(`${outsider.url}/status`)).json() as { peers: string[] }
      assert.deepEqual(status.peers, [])
    }
    const statusA = await (await fetch(`${a.url}/status`)).json() as { peers: string[] }
    assert.deepEqual(statusA.peers, [b.peerId])
  })

  it('refuses a file that is not a swarm key with one line', () => {
    const base = portBlock(2)
    let stderr = ''
    try {
      execFileSync(process.execPath, [countdBin, 'start', '--data-dir', join(dir, 'bad'), '--http', `127.0.0.1:${base}`, '--listen', `/ip4/127.0.0.1/tcp/${base + 1}`, '--swarm-key', countdBin], { stdio: 'pipe' })
      assert.fail('should not start')
    } catch (err: any) {
      assert.equal(err.status, 1)
      stderr = String(err.stderr)
    }
    assert.match(stderr, /not a swarm key/)
    assert.equal(stderr.trim().split('\n').length, 1)
  })
})
