// The HTTP contract (SPEC §2) against one real countd process.
import { strict as assert } from 'node:assert'
import { request as httpRequest } from 'node:http'
import { Cluster, waitFor, type CountdNode } from '../../scripts/cluster.js'

interface Reply { status: number, type: string, body: string }

/** Run one real node for the enclosing describe block. */
function oneNode (use: (n: CountdNode) => void, args: string[] = []): void {
  let cluster: Cluster | undefined
  before(async () => {
    cluster = await Cluster.start({ nodes: 1, args })
    use(cluster.nodes[0])
  })
  after(async () => { await cluster?.stop() })
}

async function call (node: CountdNode, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${node.url}${path}`, { method, body, headers })
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() }
}

describe('HTTP API', function () {
  this.timeout(60000)
  let n: CountdNode
  oneNode(node => { n = node })

  it('accepts every documented increment form', async () => {
    assert.deepEqual(await call(n, 'POST', '/counter/forms'), { status: 200, type: 'text/plain; charset=utf-8', body: '1' })
    assert.equal((await call(n, 'POST', '/counter/forms', '5')).body, '6')
    // curl -d sends form-urlencoded: still plain text.
    assert.equal((await call(n, 'POST', '/counter/forms', '4', { 'Content-Type': 'application/x-www-form-urlencoded' })).body, '10')
    assert.equal((await call(n, 'POST', '/counter/forms', '{"value": 10}', { 'Content-Type': 'application/json' })).body, '20')
    assert.equal((await call(n, 'POST', '/counter/forms', '{"value":1}', { 'Content-Type': 'application/json; charset=utf-8' })).body, '21')
    assert.equal((await call(n, 'POST', '/counter/forms?by=9')).body, '30')
    assert.equal((await call(n, 'POST', '/counter/forms', ' 70\n')).body, '100')
    assert.equal((await call(n, 'GET', '/counter/forms/value')).body, '100')
  })

  it('reads: unknown counters are 0, JSON views carry replicas', async () => {
    assert.equal((await call(n, 'GET', '/counter/never-seen/value')).body, '0')
    await call(n, 'POST', '/counter/view', '3')
    const view = JSON.parse((await call(n, 'GET', '/counter/view')).body)
    assert.deepEqual(view, { name: 'view', value: 3, replicas: { [n.peerId]: 3 } })
    const list = JSON.parse((await call(n, 'GET', '/counters')).body) as { counters: Array<{ name: string, value: number }>, next: string | null }
    assert.ok(list.counters.some(c => c.name === 'view' && c.value === 3))
    assert.equal(list.next, null)
    assert.equal((await call(n, 'GET', '/health')).body, 'ok')
    const status = JSON.parse((await call(n, 'GET', '/status')).body)
    assert.equal(status.id, n.peerId)
    assert.ok(Array.isArray(status.peers) && Array.isArray(status.members) && typeof status.uptimeSec === 'number')
    const metrics = await call(n, 'GET', '/metrics')
    assert.match(metrics.body, /^countd_increments_total \d+/m)
    const doc = await call(n, 'GET', '/openapi.json')
    assert.equal(JSON.parse(doc.body).openapi, '3.0.3')
  })

  it('batch POST /counters is all-or-nothing', async () => {
    const ok = await call(n, 'POST', '/counters', '{"b1": 3, "b2": 10}', { 'Content-Type': 'application/json' })
    assert.equal(ok.status, 200)
    assert.deepEqual(JSON.parse(ok.body), { b1: 3, b2: 10 })
    const bad = await call(n, 'POST', '/counters', '{"b1": 3, "b2": 0}', { 'Content-Type': 'application/json' })
    assert.equal(bad.status, 400)
    assert.equal((await call(n, 'GET', '/counter/b1/value')).body, '3')
    const nd = await call(n, 'POST', '/counters', '{"name":"b1","value":2}\n{"name":"b3","value":1}\n', { 'Content-Type': 'application/x-ndjson' })
    assert.deepEqual(JSON.parse(nd.body), { b1: 5, b3: 1 })
    // One NDJSON line is a line, not the object form (which would count "name" and "value").
    const one = await call(n, 'POST', '/counters', '{"name":"b4","value":3}', { 'Content-Type': 'application/x-ndjson' })
    assert.deepEqual(JSON.parse(one.body), { b4: 3 })
    const untyped = await call(n, 'POST', '/counters', '{"name":"b4","value":2}')
    assert.deepEqual(JSON.parse(untyped.body), { b4: 5 })
    for (const body of ['{"value":1}', '{"name":"b4"}', '{"name":"b4","value":"2"}', '{"name":"b4","value":2.0}']) {
      const r = await call(n, 'POST', '/counters', body, { 'Content-Type': 'application/x-ndjson' })
      assert.equal(r.status, 400, `${body} -> ${r.status} ${r.body}`)
    }
    assert.equal((await call(n, 'POST', '/counters', '{"b4":"2"}', { 'Content-Type': 'application/json' })).status, 400)
    assert.equal((await call(n, 'GET', '/counter/b4/value')).body, '5')
    assert.equal((await call(n, 'GET', '/counter/value/value')).body, '0')
  })

  it('rejects hostile input with a 4xx JSON error and changes nothing', async () => {
    await call(n, 'POST', '/counter/target', '7')
    const before = await call(n, 'GET', '/counters')
    const json = { 'Content-Type': 'application/json' }
    const cases: Array<[string, string, string | undefined, Record<string, string>, number]> = [
      ['POST', '/counter/target', '0', {}, 400],
      ['POST', '/counter/target', '-1', {}, 400],
      ['POST', '/counter/target', '1.5', {}, 400],
      ['POST', '/counter/target', '1e3', {}, 400],
      ['POST', '/counter/target', '0x10', {}, 400],
      ['POST', '/counter/target', '9007199254740992', {}, 400],
      ['POST', '/counter/target', '99999999999999999999999', {}, 400],
      ['POST', '/counter/target', 'abc', {}, 400],
      ['POST', '/counter/target', '+1', {}, 400],
      ['POST', '/counter/target?by=0', undefined, {}, 400],
      ['POST', '/counter/target?by=2', '3', {}, 400],
      ['POST', '/counter/target', '{"value": 1', json, 400],
      ['POST', '/counter/target', '{"value": 1e3}', json, 400],
      ['POST', '/counter/target', '{"value": 2.5}', json, 400],
      ['POST', '/counter/target', '{"value": -4}', json, 400],
      ['POST', '/counter/target', '{"nope": 4}', json, 400],
      ['POST', '/counter/target', '[1]', json, 400],
      ['POST', '/counter/target', '{"value": "5"}', json, 400],
      ['POST', '/counter/target?by=2&by=3', undefined, {}, 400],
      ['POST', '/counter/target', 'x'.repeat(70 * 1024), {}, 413],
      ['POST', '/counter/bad%20name', '1', {}, 400],
      ['POST', '/counter/' + 'a'.repeat(201), '1', {}, 400],
      ['POST', '/counter/%E0%A4%A', '1', {}, 400],
      ['GET', '/counter/bad$name/value', undefined, {}, 400],
      ['GET', '/counter/target/consistent_value?timeout=-1', undefined, {}, 400],
      ['GET', '/nope', undefined, {}, 404],
      ['GET', '/counter/target/value/extra', undefined, {}, 404],
      ['DELETE', '/counter/target', undefined, {}, 405],
      ['PUT', '/counter/target/value', '1', {}, 405],
      ['POST', '/config', '{"actors": "x"}', json, 400],
      ['POST', '/config', 'not json', json, 400],
      ['POST', '/config', '{"actors": ["/not/a/multiaddr"]}', json, 400],
      ['POST', '/counters', '{"a": "x"}', json, 400],
      ['POST', '/counters', '{}', json, 400],
      ['POST', '/counters', '{"target": 1e3}', json, 400],
      ['POST', '/counters', '{"target":5.0}', json, 400],
      ['POST', '/counters', '{"target": -1}', json, 400],
      ['POST', '/counters', '{"ok": 1, "target": 2E1}', json, 400],
      ['DELETE', '/members/12D3KooWnotamember', undefined, {}, 404]
    ]
    for (const [method, path, body, headers, status] of cases) {
      const r = await call(n, method, path, body, headers)
      assert.equal(r.status, status, `${method} ${path} ${String(body).slice(0, 40)} -> ${r.status} ${r.body}`)
      assert.equal(r.type, 'application/json', `${method} ${path}: error is JSON`)
      assert.equal(typeof JSON.parse(r.body).error, 'string')
    }
    assert.equal((await call(n, 'GET', '/counter/target/value')).body, '7')
    assert.deepEqual(await call(n, 'GET', '/counters'), before)
    assert.equal((await call(n, 'GET', '/health')).status, 200, 'still alive')
  })

  it('matches paths exactly: empty segments, trailing slashes and extra segments are 404 and change nothing', async () => {
    await call(n, 'POST', '/counter/exact', '4')
    const cases: Array<[string, string]> = [
      ['POST', '/counter//value'],
      ['GET', '/counter//value'],
      ['POST', '/counter/'],
      ['POST', '/counter/exact/'],
      ['POST', '//counter/exact'],
      ['GET', '/counter/exact/value/'],
      ['GET', '//counter/exact/value'],
      ['GET', '/counter/exact/value/extra'],
      ['GET', '/counter/exact//value'],
      ['GET', '/counters/'],
      ['GET', '/health/']
    ]
    for (const [method, path] of cases) {
      const r = await call(n, method, path, method === 'POST' ? '5' : undefined)
      assert.equal(r.status, 404, `${method} ${path} -> ${r.status} ${r.body}`)
      assert.equal(typeof JSON.parse(r.body).error, 'string')
    }
    assert.equal((await call(n, 'GET', '/counter/value/value')).body, '0', 'no counter "value" was made')
    assert.equal((await call(n, 'GET', '/counter/exact/value')).body, '4')
  })

  it('keeps "." and ".." as counter names (no path normalisation)', async () => {
    // fetch() would resolve dot segments: send the raw request line.
    const raw = async (method: string, path: string): Promise<{ status: number, body: string }> => await new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: Number(new URL(n.url).port), method, path }, res => {
        let body = ''
        res.on('data', d => { body += d })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
      })
      req.on('error', reject)
      req.end(method === 'POST' ? '2' : undefined)
    })
    assert.deepEqual(await raw('POST', '/counter/.'), { status: 200, body: '2' })
    assert.deepEqual(await raw('POST', '/counter/..'), { status: 200, body: '2' })
    assert.deepEqual(await raw('GET', '/counter/../value'), { status: 200, body: '2' })
    assert.deepEqual(await raw('GET', '/counter/./value'), { status: 200, body: '2' })
  })

  it('pages GET /counters by name: limit, prefix, after and next', async () => {
    await call(n, 'POST', '/counters', '{"pg-c": 1, "pg-a": 2, "pg-d": 3, "pg-b": 4, "ph-x": 5}', { 'Content-Type': 'application/json' })
    const page = async (q: string): Promise<{ counters: Array<{ name: string, value: number }>, next: string | null }> => {
      const r = await call(n, 'GET', `/counters?${q}`)
      assert.equal(r.status, 200, r.body)
      return JSON.parse(r.body)
    }
    assert.deepEqual(await page('prefix=pg-&limit=3'), { counters: [{ name: 'pg-a', value: 2 }, { name: 'pg-b', value: 4 }, { name: 'pg-c', value: 1 }], next: 'pg-c' })
    assert.deepEqual(await page('prefix=pg-&limit=3&after=pg-c'), { counters: [{ name: 'pg-d', value: 3 }], next: null })
    assert.deepEqual(await page('prefix=pg-&limit=4'), { counters: [{ name: 'pg-a', value: 2 }, { name: 'pg-b', value: 4 }, { name: 'pg-c', value: 1 }, { name: 'pg-d', value: 3 }], next: null })
    assert.deepEqual((await page('after=pg-d&limit=1')).counters, [{ name: 'ph-x', value: 5 }])
    assert.deepEqual(await page('prefix=zz'), { counters: [], next: null })
    const members = JSON.parse((await call(n, 'GET', '/members')).body)
    assert.equal(members.next, null)
    assert.equal(members.members[0].id, n.peerId)
    for (const q of ['limit=0', 'limit=10001', 'limit=abc', 'limit=1.5', 'limit=1&limit=2', `after=${'a'.repeat(300)}`]) {
      for (const path of ['/counters', '/tenants', '/members']) {
        const r = await call(n, 'GET', `${path}?${q}`)
        assert.equal(r.status, 400, `${path}?${q.slice(0, 20)} -> ${r.status}`)
        assert.equal(typeof JSON.parse(r.body).error, 'string')
      }
    }
  })

  it('refuses item ids that are not UTF-8, in a body or a query, and adds nothing', async () => {
    const body = Buffer.concat([Buffer.from('[{"id":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('b","tenant":"utf8t"}]')])
    const r = await fetch(`${n.url}/items`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } })
    assert.equal(r.status, 400)
    assert.equal(typeof (await r.json() as { error: string }).error, 'string')
    assert.equal((await call(n, 'GET', '/items/utf8t/count')).body, '{"count":0}')
    assert.equal((await call(n, 'GET', '/items/utf8t/has?id=%FF')).status, 400)
  })

  it('validates item and ID requests (SPEC §5, §6)', async () => {
    const json = { 'Content-Type': 'application/json' }
    const ndjson = { 'Content-Type': 'application/x-ndjson' }
    const tooMany = JSON.stringify(Array.from({ length: 10001 }, (_, i) => ({ tenant: 't', id: `i${i}` })))
    const cases: Array<[string, string, string | undefined, Record<string, string>, number]> = [
      ['POST', '/items', '[]', json, 400],
      ['POST', '/items', tooMany, json, 400],
      ['POST', '/items', '{"id": "a", "tenant": "t"}', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t"', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t"}, {"id": 5, "tenant": "t"}]', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t"}, {"id": "", "tenant": "t"}]', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t"}, {"id": {"x": 1}, "tenant": "t"}]', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t"}, {"tenant": "t"}]', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t", "meta": {"x": 1}}]', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "t", "tags": ["x"]}]', json, 400],
      ['POST', '/items', '[{"id": "a", "tenant": "bad tenant"}]', json, 400],
      ['POST', '/items', '[{"id": "a\u0001", "tenant": "t"}]', json, 400],
      ['POST', '/items', `[{"id": "${'x'.repeat(257)}", "tenant": "t"}]`, json, 400],
      ['POST', '/items', '[5]', json, 400],
      ['POST', '/items', '{"id": "a", "tenant": "t"}\n{"id": 1, "tenant": "t"}\n', ndjson, 400],
      ['POST', '/items', '{"id": "a", "tenant": "t"}\nnot json\n', ndjson, 400],
      ['POST', '/items', `[${'{"id": "a", "tenant": "t"},'.repeat(160000)}{"id": "a", "tenant": "t"}]`, json, 413],
      ['GET', '/items', undefined, {}, 405],
      ['GET', '/items/bad$tenant/count', undefined, {}, 400],
      ['GET', '/items/t/count?consistent=yes', undefined, {}, 400],
      ['GET', '/items/t/count?timeout=0', undefined, {}, 400],
      ['GET', '/items/t/has', undefined, {}, 400],
      ['GET', '/items/t/has?id=', undefined, {}, 400],
      ['GET', '/items/t/has?id=a&id=b', undefined, {}, 400],
      ['GET', '/items//count', undefined, {}, 404],
      ['GET', '/items/t/count/', undefined, {}, 404],
      ['POST', '/items/t/count', undefined, {}, 405],
      ['GET', '/ids?count=0', undefined, {}, 400],
      ['GET', '/ids?count=10001', undefined, {}, 400],
      ['GET', '/ids?count=abc', undefined, {}, 400],
      ['GET', '/ids/abc', undefined, {}, 400],
      ['GET', '/ids/-1', undefined, {}, 400],
      ['GET', '/ids/9223372036854775808', undefined, {}, 400],
      ['GET', '/ids/0001', undefined, {}, 400],
      ['POST', '/ids/next', undefined, {}, 405],
      ['GET', '/ids/next/', undefined, {}, 404]
    ]
    for (const [method, path, body, headers, status] of cases) {
      const r = await call(n, method, path, body, headers)
      assert.equal(r.status, status, `${method} ${path} ${String(body).slice(0, 60)} -> ${r.status} ${r.body}`)
      assert.equal(r.type, 'application/json', `${method} ${path}: error is JSON`)
      assert.equal(typeof JSON.parse(r.body).error, 'string')
    }
    const bad = JSON.parse((await call(n, 'POST', '/items', '[{"id": "a", "tenant": "t"}, {"id": "b", "tenant": "t"}, {"id": 7, "tenant": "t"}]', json)).body)
    assert.equal(bad.index, 2, 'the bad item is named by its index')
    assert.match(bad.error, /item 2/)
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/items/t/count')).body), { count: 0 }, 'nothing was added')
    // Decoding needs no running ID generator: 2026-01-01T00:00:01.000Z, slot 5, sequence 7.
    const id = ((1000n << 22n) | (5n << 12n) | 7n).toString()
    assert.deepEqual(JSON.parse((await call(n, 'GET', `/ids/${id}`)).body), { id, time: '2026-01-01T00:00:01.000Z', node: 5, sequence: 7 })
  })

  it('adds, counts and lists items; issues and decodes IDs', async () => {
    const json = { 'Content-Type': 'application/json' }
    const added = await call(n, 'POST', '/items', '[{"id": "a", "tenant": "it"}, {"id": "b", "tenant": "it"}, {"id": "a", "tenant": "it"}]', json)
    assert.deepEqual([added.status, JSON.parse(added.body)], [200, { accepted: 3, added: 2 }])
    const nd = await call(n, 'POST', '/items', '{"id": "b", "tenant": "it"}\n{"id": "c", "tenant": "it2"}\n', { 'Content-Type': 'application/x-ndjson' })
    assert.deepEqual(JSON.parse(nd.body), { accepted: 2, added: 1 })
    // An event's other flat fields are ignored: the pair counts once.
    const flat = await call(n, 'POST', '/items', '[{"id": "b", "tenant": "it", "ts": 1733100000, "source": "web", "seen": null}]', json)
    assert.deepEqual([flat.status, JSON.parse(flat.body)], [200, { accepted: 1, added: 0 }])
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/items/it/count')).body), { count: 2 })
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/items/it/count?consistent=true&timeout=2')).body), { count: 2 })
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/items/it/has?id=b')).body), { present: true })
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/items/it/has?id=c')).body), { present: false })
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/tenants?prefix=it')).body), { tenants: [{ tenant: 'it', count: 2 }, { tenant: 'it2', count: 1 }], next: null })
    assert.deepEqual(JSON.parse((await call(n, 'GET', '/tenants?prefix=it&limit=1')).body), { tenants: [{ tenant: 'it', count: 2 }], next: 'it' })
    const one = await call(n, 'GET', '/ids/next')
    assert.equal(one.status, 200, one.body)
    assert.match(one.body, /^[0-9]+$/)
    const many = JSON.parse((await call(n, 'GET', '/ids?count=100')).body) as { ids: string[] }
    assert.equal(many.ids.length, 100)
    for (let i = 0; i < many.ids.length; i++) assert.ok(BigInt(many.ids[i]) > BigInt(i === 0 ? one.body : many.ids[i - 1]), 'strictly increasing')
    const decoded = JSON.parse((await call(n, 'GET', `/ids/${one.body}`)).body)
    assert.equal(decoded.id, one.body)
    assert.ok(Math.abs(Date.parse(decoded.time) - Date.now()) < 60000, decoded.time)
    assert.ok(decoded.node >= 0 && decoded.node <= 1023 && decoded.sequence >= 0 && decoded.sequence <= 4095)
  })

  it('a one-node cluster answers consistent reads at once', async () => {
    await call(n, 'POST', '/counter/solo', '2')
    assert.deepEqual(await call(n, 'GET', '/counter/solo/consistent_value'), { status: 200, type: 'text/plain; charset=utf-8', body: '2' })
  })
})

describe('paged lists across restarts', function () {
  this.timeout(60000)
  let n: CountdNode
  oneNode(node => { n = node })

  it('lists every counter and tenant after a clean stop (snapshot load) and after kill -9 (entry replay)', async () => {
    await call(n, 'POST', '/counters', '{"r-b": 1, "r-a": 2}', { 'Content-Type': 'application/json' })
    await call(n, 'POST', '/items', '[{"id": "x", "tenant": "rt"}]', { 'Content-Type': 'application/json' })
    const names = async (): Promise<string[]> => (JSON.parse((await call(n, 'GET', '/counters')).body) as { counters: Array<{ name: string }> }).counters.map(c => c.name)
    const expected = ['r-a', 'r-b']
    for (const [how, restart] of [['clean stop', async () => { await n.stop() }], ['kill -9', async () => { await n.kill('SIGKILL') }]] as const) {
      await restart()
      await n.start()
      assert.deepEqual(await names(), expected, how)
      assert.deepEqual(JSON.parse((await call(n, 'GET', '/tenants')).body), { tenants: [{ tenant: 'rt', count: 1 }], next: null }, how)
      // A name new after the load is listed too.
      const fresh = `r-${how === 'clean stop' ? 'c' : 'd'}`
      await call(n, 'POST', `/counter/${fresh}`, '1')
      expected.push(fresh)
      assert.deepEqual(await names(), expected, `${how}: then a new name`)
    }
  })
})

describe('snapshot while running (--quiet-snapshot-entries)', function () {
  this.timeout(60000)
  let cluster: Cluster
  const lines: string[] = []
  before(async () => {
    cluster = await Cluster.start({ nodes: 1, args: ['--quiet-snapshot-entries', '1'], logLevel: 'debug', onLine: (_n, l) => lines.push(l) })
  })
  after(async () => { await cluster?.stop() })
  const loadedFrom = (): string | undefined => lines.map(l => /"from":"(\w+)".*"msg":"replica loaded"/.exec(l)?.[1]).filter(f => f !== undefined).pop()
  const savedSnapshots = (): number => lines.filter(l => /"saved":true.*"msg":"quiet snapshot"/.test(l)).length

  it('a node that went quiet restarts from a snapshot after kill -9; a write after the snapshot is never lost to it', async () => {
    const n = cluster.nodes[0]
    await call(n, 'POST', '/counters', '{"q-a": 2, "q-b": 3}', { 'Content-Type': 'application/json' })
    await call(n, 'POST', '/items', '[{"id": "x", "tenant": "qt"}]', { 'Content-Type': 'application/json' })
    await waitFor(() => savedSnapshots() > 0, 10000, 50)
    assert.equal(savedSnapshots(), 1, 'a quiet node saves a snapshot')
    await n.kill('SIGKILL')
    await n.start()
    assert.equal(loadedFrom(), 'snapshot')
    assert.equal((await call(n, 'GET', '/counter/q-b/value')).body, '3')
    assert.equal((await call(n, 'GET', '/items/qt/count')).body, '{"count":1}')
    // No write since: the snapshot stays good for the next crash too.
    await n.kill('SIGKILL')
    await n.start()
    assert.equal(loadedFrom(), 'snapshot')
    // Acknowledged writes, then kill -9 before the node is quiet again: the
    // snapshot lacks them, so it must not be used.
    assert.equal((await call(n, 'POST', '/counter/q-a', '5')).body, '7')
    assert.equal((await call(n, 'POST', '/items', '[{"id": "y", "tenant": "qt"}]', { 'Content-Type': 'application/json' })).status, 200)
    await n.kill('SIGKILL')
    await n.start()
    assert.equal(loadedFrom(), 'entries')
    assert.equal((await call(n, 'GET', '/counter/q-a/value')).body, '7')
    assert.equal((await call(n, 'GET', '/items/qt/count')).body, '{"count":2}')
  })
})

describe('Idempotency-Key', function () {
  this.timeout(60000)
  let n: CountdNode
  oneNode(node => { n = node })

  const keyed = async (key: string, body: string, name = 'idem'): Promise<Reply> => await call(n, 'POST', `/counter/${name}`, body, { 'Idempotency-Key': key })

  it('a retry returns the first answer and counts once, also across kill -9', async () => {
    assert.deepEqual((await keyed('k1', '5')).body, '5')
    assert.deepEqual((await keyed('k1', '5')).body, '5')
    assert.equal((await call(n, 'POST', '/counter/idem', '1')).body, '6')
    // Concurrent retries of a new key: still once.
    const answers = await Promise.all(Array.from({ length: 10 }, async () => (await keyed('k2', '10')).body))
    assert.deepEqual(new Set(answers), new Set(['16']))
    await n.kill('SIGKILL')
    await n.start()
    assert.equal((await keyed('k2', '10')).body, '16')
    assert.equal((await call(n, 'GET', '/counter/idem/value')).body, '16')
  })

  it('rejects a key reused for another increment (422) and malformed keys (400)', async () => {
    await keyed('k3', '2', 'idem2')
    const reused = await keyed('k3', '3', 'idem2')
    assert.equal(reused.status, 422)
    assert.equal(typeof JSON.parse(reused.body).error, 'string')
    assert.equal((await keyed('bad key with spaces', '1', 'idem2')).status, 400)
    assert.equal((await call(n, 'GET', '/counter/idem2/value')).body, '2')
  })
})

describe('--api-token', function () {
  this.timeout(60000)
  const token = 'correct-horse-battery-staple'
  let n: CountdNode
  oneNode(node => { n = node }, ['--api-token', token])

  it('requires the bearer token on every route but /health', async () => {
    for (const auth of [undefined, 'Bearer wrong-token-of-some-length', `Basic ${token}`, token]) {
      const r = await call(n, 'POST', '/counter/guarded', '1', auth === undefined ? {} : { Authorization: auth })
      assert.equal(r.status, 401)
      assert.equal(typeof JSON.parse(r.body).error, 'string')
      assert.equal((await call(n, 'GET', '/nope', undefined, auth === undefined ? {} : { Authorization: auth })).status, 401)
    }
    assert.equal((await call(n, 'GET', '/health')).status, 200)
    const ok = { Authorization: `Bearer ${token}` }
    assert.equal((await call(n, 'POST', '/counter/guarded', '2', ok)).body, '2')
    assert.equal((await call(n, 'GET', '/counter/guarded/value', undefined, ok)).body, '2')
  })

  it('the CLI passes COUNTD_API_TOKEN through', async () => {
    const { execFileSync } = await import('node:child_process')
    const { countdBin } = await import('../../scripts/cluster.js')
    const out = execFileSync(process.execPath, [countdBin, 'inc', 'guarded', '--api', n.url], { env: { ...process.env, COUNTD_API_TOKEN: token } })
    assert.equal(String(out), '3\n')
  })
})
