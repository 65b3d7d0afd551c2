// The Redis protocol and gRPC on real countd processes: increments over
// Redis on one node and over HTTP on another converge; items added with SADD
// and over gRPC are one set; IDs over gRPC and HTTP never repeat; the token
// guards every listener; a consistent read during a pause is UNAVAILABLE.
import { strict as assert } from 'node:assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { loadCountdPackage } from '../../src/api/grpc/server.js'
import { CountdNode, waitFor, portBlock } from '../../scripts/cluster.js'

const run = promisify(execFile)
const TOKEN = 'protocols-test-token-0123456789'

async function redis (port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', TOKEN, ...args])
  return stdout.trim()
}

function grpcClient (port: number): any {
  const pkg = loadCountdPackage() as any
  return new pkg.countd.v1.Countd(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
}

async function call (c: any, method: string, req: unknown, token: string | undefined = TOKEN): Promise<any> {
  const md = new grpc.Metadata()
  if (token !== undefined) md.set('authorization', `Bearer ${token}`)
  return await new Promise((resolve, reject) => {
    c[method](req, md, { deadline: Date.now() + 15000 }, (e: Error | null, r: unknown) => { if (e !== null) reject(e); else resolve(r) })
  })
}

describe('Redis protocol and gRPC on a real cluster', function () {
  this.timeout(90000)
  let dir: string
  let nodes: CountdNode[] = []
  let base = 0

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'countd-proto-'))
    base = portBlock(8)
    nodes = [0, 1].map(i => new CountdNode({
      name: `p${i}`,
      dataDir: join(dir, `p${i}`),
      httpPort: base + i,
      p2pPort: base + 2 + i,
      peers: i === 0 ? [] : [`127.0.0.1:${base + 2}`],
      args: ['--api-token', TOKEN, '--resp', `127.0.0.1:${base + 4 + i}`, '--grpc', `127.0.0.1:${base + 6 + i}`]
    }))
    await nodes[0].start()
    await nodes[1].start()
  })
  after(async () => {
    await Promise.all(nodes.map(async n => await n.kill().catch(() => {})))
    rmSync(dir, { recursive: true, force: true })
  })

  const auth = (): Record<string, string> => ({ Authorization: `Bearer ${TOKEN}` })

  it('INCR over Redis on one node and HTTP on the other converge', async () => {
    assert.equal(await redis(base + 4, 'INCRBY', 'mixed', '5'), '5')
    const res = await fetch(`${nodes[1].url}/counter/mixed`, { method: 'POST', body: '3', headers: auth() })
    assert.equal(res.status, 200)
    await waitFor(async () => await redis(base + 4, 'GET', 'mixed') === '8' && await redis(base + 5, 'GET', 'mixed') === '8', 10000, 50)
    assert.equal(await redis(base + 5, 'COUNTD.CONSISTENT', 'mixed'), '8')
    assert.equal((await call(grpcClient(base + 7), 'Get', { name: 'mixed', consistent: true })).value, '8')
    assert.match(await redis(base + 4, 'DECR', 'mixed'), /ERR/)
  })

  it('SADD on one node and AddItems over gRPC on the other are one set', async () => {
    assert.equal(await redis(base + 4, 'SADD', 'tenant1', 'a', 'b', 'a'), '2')
    const added = await call(grpcClient(base + 7), 'AddItems', { items: [{ tenant: 'tenant1', id: 'b' }, { tenant: 'tenant1', id: 'c' }] })
    assert.equal(Number(added.accepted), 2)
    await waitFor(async () => await redis(base + 5, 'SCARD', 'tenant1') === '3' && await redis(base + 4, 'SCARD', 'tenant1') === '3', 10000, 50)
    const counted = await call(grpcClient(base + 6), 'CountItems', { tenant: 'tenant1', consistent: true })
    assert.equal(Number(counted.count), 3)
    assert.equal(await redis(base + 5, 'SISMEMBER', 'tenant1', 'c'), '1')
  })

  it('IDs from both nodes over gRPC and HTTP never repeat and each node\'s increase', async () => {
    const seen = new Set<string>()
    for (const [i, n] of nodes.entries()) {
      let last = -1n
      for (let k = 0; k < 3; k++) {
        const g = await call(grpcClient(base + 6 + i), 'NextIds', { count: 1000 })
        const h = await (await fetch(`${n.url}/ids?count=1000`, { headers: auth() })).json() as { ids: string[] }
        for (const id of [...g.ids.map(String), ...h.ids]) {
          assert.ok(!seen.has(id), `duplicate ${id}`)
          seen.add(id)
          assert.ok(BigInt(id) > last)
          last = BigInt(id)
        }
      }
    }
    assert.equal(seen.size, 12000)
  })

  it('the token guards Redis and gRPC too', async () => {
    const { stdout } = await run('redis-cli', ['-p', String(base + 4), 'INCR', 'x'])
    assert.match(stdout, /NOAUTH/)
    await assert.rejects(call(grpcClient(base + 6), 'Increment', { name: 'x', by: 1 }, 'wrong-token-0123456789abcdef'), (e: any) => e.code === grpc.status.UNAUTHENTICATED)
    assert.equal(await (await fetch(`${nodes[0].url}/counter/x/value`, { headers: auth() })).text(), '0')
    assert.equal((await fetch(`${nodes[0].url}/counter/x/value`)).status, 401)
  })

  it('a consistent read during a pause is UNAVAILABLE (gRPC) and an error reply (Redis)', async () => {
    assert.equal((await fetch(`${nodes[0].url}/counter/paused`, { method: 'POST', headers: auth() })).status, 200)
    nodes[1].pause()
    try {
      await assert.rejects(call(grpcClient(base + 6), 'Get', { name: 'paused', consistent: true, timeout_ms: 1000 }), (e: any) => e.code === grpc.status.UNAVAILABLE)
      assert.match(await redis(base + 4, 'COUNTD.CONSISTENT', 'paused', '1'), /ERR/)
    } finally {
      nodes[1].resume()
    }
  })
})
