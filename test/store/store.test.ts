import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store, DataDirLockedError, type StoredEntry } from '../../src/store/store.js'

async function allEntries (s: Store): Promise<StoredEntry[]> {
  const out: StoredEntry[] = []
  for await (const chunk of s.entries()) out.push(...chunk)
  return out
}

function asMap (es: StoredEntry[]): Map<string, bigint> {
  const m = new Map<string, bigint>()
  for (const e of es) {
    const k = `${e.name}|${e.replica}`
    assert.ok(!m.has(k), `duplicate key ${k}`)
    m.set(k, e.count)
  }
  return m
}

describe('Store (LevelDB)', function () {
  this.timeout(20000)
  let dir: string
  const open: Store[] = []

  async function openStore (): Promise<Store> {
    const s = await Store.open(dir)
    open.push(s)
    return s
  }
  async function closeStore (s: Store): Promise<void> {
    await s.close()
    open.splice(open.indexOf(s), 1)
  }

  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-store-')) })
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })

  it('a fresh store is empty', async () => {
    const s = await openStore()
    assert.deepEqual(await allEntries(s), [])
    assert.deepEqual(await s.members(), [])
    assert.equal(await s.identity(), undefined)
  })

  it('concurrent writeDurable calls all resolve and share synced batches (group commit)', async () => {
    const s = await openStore()
    const sizes: number[] = []
    s.onBatch = (size) => { sizes.push(size) }
    const calls = 200
    await Promise.all(Array.from({ length: calls }, async (_, i) =>
      await s.writeDurable([{ name: `c${i % 10}`, replica: 'me', count: BigInt(i + 1) }])))
    assert.ok(sizes.length >= 1)
    assert.ok(sizes.length < calls, `expected fewer batches than calls, got ${sizes.length}`)
    assert.equal(sizes.reduce((a, b) => a + b, 0), calls)
    const m = asMap(await allEntries(s))
    assert.equal(m.size, 10)
    for (let k = 0; k < 10; k++) assert.equal(m.get(`c${k}|me`), BigInt(190 + k + 1))
  })

  it('after close and reopen, entries() yields the highest count per key', async () => {
    let s = await openStore()
    const writes: Array<Promise<void>> = []
    // counts arrive out of order, across both paths
    for (const count of [5n, 2n, 9n, 7n]) writes.push(s.writeDurable([{ name: 'hits', replica: 'a', count }]))
    writes.push(s.writeDurable([{ name: 'hits', replica: 'b', count: 2n ** 70n }, { name: 'other', replica: 'a', count: 1n }]))
    await Promise.all(writes)
    await s.writeDurable([{ name: 'hits', replica: 'a', count: 11n }, { name: 'hits', replica: 'a', count: 10n }])
    await closeStore(s)
    s = await openStore()
    const m = asMap(await allEntries(s))
    assert.deepEqual([...m].sort(), [
      ['hits|a', 11n],
      ['hits|b', 2n ** 70n],
      ['other|a', 1n]
    ])
  })

  it('writeLazy entries are readable after close/reopen (close flushes)', async () => {
    let s = await openStore()
    s.writeLazy([{ name: 'x', replica: 'peer1', count: 3n }, { name: 'x', replica: 'peer2', count: 4n }])
    s.writeLazy([{ name: 'x', replica: 'peer1', count: 8n }, { name: 'x', replica: 'peer1', count: 6n }])
    s.writeLazy([{ name: 'y.z', replica: 'peer1', count: 2n ** 64n + 1n }])
    await closeStore(s) // immediately: lazy timer has not fired yet
    s = await openStore()
    const m = asMap(await allEntries(s))
    assert.equal(m.get('x|peer1'), 8n)
    assert.equal(m.get('x|peer2'), 4n)
    assert.equal(m.get('y.z|peer1'), 2n ** 64n + 1n)
    assert.equal(m.size, 3)
  })

  it('writeLazy runs onWritten once LevelDB has the batch, before resolving; lower counts never overwrite higher', async () => {
    let s = await openStore()
    const order: string[] = []
    const p1 = s.writeLazy([{ name: 'k', replica: 'p', count: 10n }], () => { order.push('written1') }).then(() => { order.push('resolved1') })
    // arrives while 10 is being written: must not replace it
    const p2 = s.writeLazy([{ name: 'k', replica: 'p', count: 4n }], () => { order.push('written2') }).then(() => { order.push('resolved2') })
    await Promise.all([p1, p2])
    assert.deepEqual(order.slice(0, 1), ['written1'])
    assert.ok(order.indexOf('written1') < order.indexOf('resolved1'))
    assert.ok(order.indexOf('written2') < order.indexOf('resolved2'))
    const inDb = asMap(await allEntries(s))
    assert.equal(inDb.get('k|p'), 10n)
    await closeStore(s)
    s = await openStore()
    assert.equal(asMap(await allEntries(s)).get('k|p'), 10n)
  })

  it('names with dots, tildes and dashes round-trip', async () => {
    let s = await openStore()
    const names = ['a', 'A.b_c~d-9', 'x'.repeat(200), 'c0', 'c', '...']
    await s.writeDurable(names.map((name, i) => ({ name, replica: '12D3KooWAbC', count: BigInt(i + 1) })))
    await closeStore(s)
    s = await openStore()
    const m = asMap(await allEntries(s))
    assert.equal(m.size, names.length)
    names.forEach((n, i) => assert.equal(m.get(`${n}|12D3KooWAbC`), BigInt(i + 1)))
  })

  it('members saveMember/deleteMember round-trip', async () => {
    let s = await openStore()
    s.saveMember({ id: 'A', addrs: ['/ip4/10.0.0.1/tcp/7778'], lastSeen: 100 })
    s.saveMember({ id: 'B', addrs: [], lastSeen: 5, retiredAt: 50 })
    s.saveMember({ id: 'C', addrs: [], lastSeen: 1 })
    s.saveMember({ id: 'A', addrs: ['/ip4/10.0.0.9/tcp/7778'], lastSeen: 200 })
    s.deleteMember('C')
    await closeStore(s)
    s = await openStore()
    const ms = (await s.members()).sort((x, y) => x.id.localeCompare(y.id))
    assert.deepEqual(ms, [
      { id: 'A', addrs: ['/ip4/10.0.0.9/tcp/7778'], lastSeen: 200 },
      { id: 'B', addrs: [], lastSeen: 5, retiredAt: 50 }
    ])
    s.deleteMember('A')
    await closeStore(s)
    s = await openStore()
    assert.deepEqual((await s.members()).map(m => m.id), ['B'])
    // members do not show up as counter entries and vice versa
    assert.deepEqual(await allEntries(s), [])
  })

  it('identity round-trip', async () => {
    let s = await openStore()
    const key = Uint8Array.from([0, 1, 2, 250, 255, 8, 0])
    await s.saveIdentity(key)
    assert.deepEqual(await s.identity(), key)
    await closeStore(s)
    s = await openStore()
    const got = await s.identity()
    assert.ok(got instanceof Uint8Array)
    assert.deepEqual(got, key)
  })

  it('opening the same dir twice throws DataDirLockedError', async () => {
    await openStore()
    await assert.rejects(Store.open(dir), (err: unknown) => {
      assert.ok(err instanceof DataDirLockedError, String(err))
      assert.match((err as Error).message, /locked/)
      assert.ok((err as Error).message.includes(dir))
      return true
    })
  })

  it('the dir can be reopened after close', async () => {
    const s = await openStore()
    await s.writeDurable([{ name: 'n', replica: 'r', count: 1n }])
    await closeStore(s)
    const s2 = await openStore()
    assert.equal((await allEntries(s2)).length, 1)
  })
})
