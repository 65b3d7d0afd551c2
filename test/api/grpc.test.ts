// The gRPC front end (SPEC §7) with a real @grpc/grpc-js client generated
// from proto/countd/v1/countd.proto; counters on a real Replica + LevelDB.
import { strict as assert } from 'node:assert'
import * as grpc from '@grpc/grpc-js'
import { startGrpcServer, loadCountdPackage, type RunningServer } from '../../src/api/grpc/server.js'
import { FixtureService, quietLog } from './service-fixture.js'

const PORT = 23200

type Client = Record<string, (req: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: any) => void) => void> & grpc.Client

function client (port: number): Client {
  const pkg = loadCountdPackage() as any
  return new pkg.countd.v1.Countd(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as Client
}

async function call (c: Client, method: string, req: unknown, token?: string): Promise<any> {
  const md = new grpc.Metadata()
  if (token !== undefined) md.set('authorization', `Bearer ${token}`)
  return await new Promise((resolve, reject) => {
    c[method](req, md, (e, r) => { if (e !== null) reject(e); else resolve(r) })
  })
}

async function status (p: Promise<unknown>): Promise<{ code: number, details: string, metadata: grpc.Metadata }> {
  try {
    await p
  } catch (e: any) {
    return e
  }
  throw new Error('expected an error status')
}

describe('gRPC countd.v1.Countd', function () {
  this.timeout(60000)
  let service: FixtureService
  let server: RunningServer
  let secured: RunningServer
  let c: Client
  let cs: Client

  before(async () => {
    service = await FixtureService.open()
    server = await startGrpcServer(service, { host: '127.0.0.1', port: PORT, log: quietLog })
    secured = await startGrpcServer(service, { host: '127.0.0.1', port: PORT + 1, token: 'tok', log: quietLog })
    c = client(server.port)
    cs = client(secured.port)
  })
  after(async () => {
    c.close()
    cs.close()
    await server.close()
    await secured.close()
    await service.close()
  })

  it('every method', async () => {
    assert.deepEqual(await call(c, 'Increment', { name: 'g.hits' }), { value: '1' })
    assert.deepEqual(await call(c, 'Increment', { name: 'g.hits', by: '9007199254740991' }), { value: '9007199254740992' })
    assert.deepEqual(await call(c, 'Get', { name: 'g.hits' }), { value: '9007199254740992' })
    assert.deepEqual(await call(c, 'Get', { name: 'g.never' }), { value: '0' })
    assert.deepEqual(await call(c, 'Get', { name: 'g.hits', consistent: true, timeoutMs: 1000 }), { value: '9007199254740992' })
    assert.deepEqual(await call(c, 'AddItems', { items: [{ tenant: 't1', id: 'a' }, { tenant: 't1', id: 'b' }, { tenant: 't1', id: 'a' }] }), { accepted: 3, added: 2 })
    assert.deepEqual(await call(c, 'CountItems', { tenant: 't1' }), { count: '2' })
    assert.deepEqual(await call(c, 'CountItems', { tenant: 't1', consistent: true }), { count: '2' })
    const { ids } = await call(c, 'NextIds', { count: 5 })
    assert.equal(ids.length, 5)
    assert.ok(ids.every((id: string, i: number) => i === 0 || BigInt(id) > BigInt(ids[i - 1])))
    assert.equal((await call(c, 'NextIds', {})).ids.length, 1)
    assert.equal(service.value('g.hits'), 9007199254740992n)
  })

  it('bad arguments: INVALID_ARGUMENT and nothing changes', async () => {
    for (const [method, req] of [
      ['Increment', { name: 'bad name' }],
      ['Increment', { name: '' }],
      ['Increment', { name: 'g.hits', by: '9007199254740992' }],
      ['Get', { name: 'x'.repeat(201) }],
      ['Get', { name: 'g.hits', consistent: true, timeoutMs: 300001 }],
      ['AddItems', { items: [] }],
      ['AddItems', { items: [{ tenant: 't1', id: 'ok' }, { tenant: 't1', id: '' }] }],
      ['AddItems', { items: [{ tenant: 'a:b', id: 'x' }] }],
      ['CountItems', { tenant: 'no/slash' }],
      ['NextIds', { count: 10001 }]
    ] as const) {
      const s = await status(call(c, method, req))
      assert.equal(s.code, grpc.status.INVALID_ARGUMENT, `${method} ${JSON.stringify(req)}: ${s.details}`)
    }
    const s = await status(call(c, 'AddItems', { items: [{ tenant: 't1', id: 'ok' }, { tenant: 't1', id: '' }] }))
    assert.match(s.details, /^items\[1\]: invalid item id/)
    assert.equal(service.value('g.hits'), 9007199254740992n)
    assert.equal(service.itemCount('t1'), 2)
  })

  it('undecodable requests and ids that are not UTF-8: INVALID_ARGUMENT and nothing changes; a leading U+FEFF is kept', async () => {
    const raw = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure())
    const send = async (method: string, bytes: Buffer): Promise<unknown> => await new Promise((resolve, reject) => {
      raw.makeUnaryRequest(`/countd.v1.Countd/${method}`, (b: Buffer) => b, (b: Buffer) => b, bytes, (e, r) => { if (e !== null) reject(e); else resolve(r) })
    })
    const field = (n: number, bytes: Buffer): Buffer => Buffer.concat([Buffer.from([n << 3 | 2, bytes.length]), bytes])
    const addItems = (id: Buffer): Buffer => field(1, Buffer.concat([field(1, Buffer.from('u8')), field(2, id)]))
    try {
      const cut = await status(send('Increment', Buffer.from([0xff, 0xff, 0xff]))) // a varint that never ends
      assert.equal(cut.code, grpc.status.INVALID_ARGUMENT)
      assert.match(cut.details, /^malformed Increment request/)
      const bad = await status(send('AddItems', Buffer.concat([addItems(Buffer.from('ok')), addItems(Buffer.from([0xc3, 0x28]))])))
      assert.equal(bad.code, grpc.status.INVALID_ARGUMENT)
      assert.match(bad.details, /^items\[1\]: id is not valid UTF-8/)
      assert.equal(service.itemCount('u8'), 0)
      await send('AddItems', addItems(Buffer.from('\ufeffz')))
      assert.equal(service.itemCount('u8'), 1)
      assert.equal(await service.hasItem('u8', '\ufeffz'), true)
      assert.equal(await service.hasItem('u8', 'z'), false)
    } finally {
      raw.close()
    }
  })

  it('UNAUTHENTICATED without the right bearer token', async () => {
    assert.equal((await status(call(cs, 'Increment', { name: 'locked' }))).code, grpc.status.UNAUTHENTICATED)
    assert.equal((await status(call(cs, 'Get', { name: 'locked' }, 'wrong'))).code, grpc.status.UNAUTHENTICATED)
    assert.equal(service.value('locked'), 0n)
    assert.deepEqual(await call(cs, 'Increment', { name: 'locked' }, 'tok'), { value: '1' })
  })

  it('UNAVAILABLE when a consistent read cannot be consistent, with the best guess', async () => {
    service.unreachable = 'peer-b'
    try {
      const s = await status(call(c, 'Get', { name: 'g.hits', consistent: true, timeoutMs: 100 }))
      assert.equal(s.code, grpc.status.UNAVAILABLE)
      assert.deepEqual(s.metadata.get('countd-best-guess'), ['9007199254740992'])
      assert.deepEqual(s.metadata.get('countd-unreachable'), ['peer-b'])
      assert.equal((await status(call(c, 'CountItems', { tenant: 't1', consistent: true }))).code, grpc.status.UNAVAILABLE)
      assert.deepEqual(await call(c, 'Get', { name: 'g.hits' }), { value: '9007199254740992' }) // local reads still answer
    } finally {
      service.unreachable = undefined
    }
  })
})
