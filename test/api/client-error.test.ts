// Requests node:http's parser rejects before routing still get a JSON error
// (SPEC §2), sent over raw sockets because fetch() cannot send them.
import { strict as assert } from 'node:assert'
import { connect } from 'node:net'
import { Cluster, type CountdNode } from '../../scripts/cluster.js'

/** Write raw bytes, read until the server closes; resolve with status, headers and body. */
async function rawExchange (node: CountdNode, bytes: string): Promise<{ status: number, head: string, body: string, raw: string }> {
  const url = new URL(node.url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', d => { data += d })
    socket.on('error', reject)
    socket.on('close', () => {
      const [head, body = ''] = data.split('\r\n\r\n')
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body, raw: data })
    })
    socket.setTimeout(5000, () => { socket.destroy(new Error(`no close after: ${data}`)) })
    socket.write(bytes)
  })
}

describe('HTTP errors before routing', function () {
  this.timeout(60000)
  let cluster: Cluster
  let n: CountdNode
  before(async () => {
    cluster = await Cluster.start({ nodes: 1 })
    n = cluster.nodes[0]
  })
  after(async () => { await cluster?.stop() })

  const cases: Array<[string, string, number]> = [
    ['a garbage request line', 'GARBAGE LINE\r\n\r\n', 400],
    ['a bad method', 'G@T /health HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a negative Content-Length', 'POST /counter/ce HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
    ['Content-Length with Transfer-Encoding', 'POST /counter/ce HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n5\r\n0\r\n\r\n', 400],
    ['a bad chunk size', 'POST /counter/ce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n5\r\n0\r\n\r\n', 400],
    ['oversized headers', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`, 431],
    ['an HTTP/1.1 request without Host', 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n', 400],
    ['an unknown Expect', 'POST /counter/ce HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 1\r\nConnection: close\r\n\r\n5', 417],
    ['CONNECT', 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n', 405]
  ]
  for (const [what, bytes, status] of cases) {
    it(`answers ${what} with ${status} JSON and closes`, async () => {
      const r = await rawExchange(n, bytes)
      assert.equal(r.status, status, r.head)
      assert.match(r.head, /\r\ncontent-type: application\/json/i)
      assert.equal(typeof JSON.parse(r.body).error, 'string')
    })
  }

  it('takes an absolute-form target as its path', async () => {
    const r = await rawExchange(n, 'GET http://x/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.equal(r.status, 200, r.head)
    assert.equal(r.body, 'ok')
  })

  it('garbage after pipelined writes: their answers first, in order, then the 400 (a client told only 400 would retry a counted write)', async () => {
    for (const bytes of [
      'POST /counter/pipe HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1GARBAGE\r\n\r\n',
      'POST /counter/pipe HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n2POST /counter/pipe HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n3GARBAGE\r\n\r\n'
    ]) {
      const r = await rawExchange(n, bytes)
      const statuses = [...r.raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map(m => Number(m[1]))
      assert.deepEqual(statuses, bytes.includes('2POST') ? [200, 200, 400] : [200, 400], r.raw)
    }
    assert.equal(await (await fetch(`${n.url}/counter/pipe/value`)).text(), '6')
  })

  it('counted nothing and still serves', async () => {
    assert.equal(await (await fetch(`${n.url}/counter/ce/value`)).text(), '0')
    assert.equal((await fetch(`${n.url}/health`)).status, 200)
  })
})
