import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { Store, DataDirLockedError, entryKey, type PlacedEntry } from '../../src/store/store.js'
import { counterKind } from '../../src/crdt/gcounter.js'
import { placementOf } from '../../src/replica.js'
import { itemHash, itemLeaf } from '../../src/crdt/itemhash.js'
import { leafHex, nodePrefix } from '../../src/crdt/digest.js'

type StoredEntry = PlacedEntry
/** A counter entry placed in its leaf. */
const ce = (key: string, sub: string, value: bigint): PlacedEntry => ({ ds: 'c', key, sub, value, leaf: counterKind.leafOf(key, sub) })

async function allEntries (s: Store): Promise<StoredEntry[]> {
  const out: StoredEntry[] = []
  for await (const chunk of s.entries()) out.push(...chunk)
  return out
}

function asMap (es: StoredEntry[]): Map<string, bigint> {
  const m = new Map<string, bigint>()
  for (const e of es) {
    const k = `${e.key}|${e.sub}`
    assert.ok(!m.has(k), `duplicate key ${k}`)
    m.set(k, e.value)
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
      await s.writeDurable([ce(`c${i % 10}`, 'me', BigInt(i + 1))])))
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
    for (const count of [5n, 2n, 9n, 7n]) writes.push(s.writeDurable([ce('hits', 'a', count)]))
    writes.push(s.writeDurable([ce('hits', 'b', 2n ** 70n), ce('other', 'a', 1n)]))
    await Promise.all(writes)
    await s.writeDurable([ce('hits', 'a', 11n), ce('hits', 'a', 10n)])
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
    s.writeLazy([ce('x', 'peer1', 3n), ce('x', 'peer2', 4n)])
    s.writeLazy([ce('x', 'peer1', 8n), ce('x', 'peer1', 6n)])
    s.writeLazy([ce('y.z', 'peer1', 2n ** 64n + 1n)])
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
    const p1 = s.writeLazy([ce('k', 'p', 10n)], () => { order.push('written1') }).then(() => { order.push('resolved1') })
    // arrives while 10 is being written: must not replace it
    const p2 = s.writeLazy([ce('k', 'p', 4n)], () => { order.push('written2') }).then(() => { order.push('resolved2') })
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
    await s.writeDurable(names.map((name, i) => ce(name, '12D3KooWAbC', BigInt(i + 1))))
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

  it('acknowledged writes are visible to every store read at once, folded or not', async () => {
    const s = await openStore()
    const record = { name: 'a', by: '5', value: '5', expiresAt: Date.now() + 60000 }
    await s.writeDurable([ce('a', 'r', 5n)], [['key-1', record]], [['lease', '9']])
    // The fold of the journal record is queued but has not had a LevelDB round trip yet.
    const leaf = leafHex(counterKind.leafOf('a', 'r'))
    const elsewhere = leaf[0] === '0' ? '1' : '0'
    assert.deepEqual((await s.entriesUnder('c', [elsewhere, leaf.slice(0, 2), 'f0'])).map(e => [e.key, e.value]), [['a', 5n]])
    assert.deepEqual((await s.entriesUnder('c', [''])).map(e => [e.key, e.value]), [['a', 5n]])
    assert.deepEqual(await s.idempotencyRecord('key-1'), record)
    assert.equal(await s.meta('lease'), '9')
    await s.writeDurable([ce('a', 'r', 8n)])
    assert.deepEqual((await s.entriesUnder('c', [''])).map(e => [e.key, e.value]), [['a', 8n]])
    await closeStore(s)
    const s2 = await openStore()
    assert.deepEqual([...asMap(await allEntries(s2))], [['a|r', 8n]])
  })

  it('first writes (an entry new to the store) are read before and after their fold, and a later write of the key lands over them', async () => {
    const s = await openStore()
    const first = { ...ce('b', 'r', 1n), firstWrite: true }
    await s.writeDurable([first, { ds: 's', key: 't1', sub: 'x', value: 1n, leaf: 7, firstWrite: true }])
    await s.writeDurable([ce('b', 'r', 4n)]) // same fold window: the coalesced op of the key is newer
    assert.deepEqual((await s.entriesUnder('c', [''])).map(e => [e.key, e.value]), [['b', 4n]])
    assert.deepEqual((await s.entriesUnder('s', [''])).map(e => [e.key, e.sub, e.value]), [['t1', 'x', 1n]])
    await new Promise(resolve => setTimeout(resolve, 700)) // past the fold delay: both folded into LevelDB
    assert.deepEqual((await s.entriesUnder('c', [''])).map(e => [e.key, e.value]), [['b', 4n]])
    await closeStore(s)
    const s2 = await openStore()
    assert.deepEqual([...asMap(await allEntries(s2))].sort(), [['b|r', 4n], ['t1|x', 1n]])
  })

  it('entriesUnder returns exactly the entries under any set of digest-tree nodes', async () => {
    const s = await openStore()
    const all: PlacedEntry[] = []
    // Enough that one range holds more than LevelDB hands back per read (16 KB).
    for (let i = 0; i < 20000; i++) all.push(ce(`n${i}`, 'r', BigInt(i + 1)))
    await s.writeDurable(all)
    await s.writeDurable([{ ds: 's', key: 't', sub: 'x', value: 1n, leaf: 7 }]) // another dataset: never returned
    let seed = 7
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
    for (const depth of [1, 2, 3, 5]) {
      for (const count of [1, 5, 200, 2000]) {
        const nodes = [...new Set(Array.from({ length: count }, () => rand(16 ** depth)))]
        const prefixes = nodes.map(n => nodePrefix(depth, n))
        const want = all.filter(e => prefixes.includes(leafHex(e.leaf).slice(0, depth))).map(e => e.key).sort()
        for (const hint of [Infinity, 0]) { // seeking range by range, and one scan of the span
          const got = (await s.entriesUnder('c', prefixes, hint)).map(e => e.key).sort()
          assert.deepEqual(got, want, `depth ${depth}, ${nodes.length} nodes, hint ${hint}`)
        }
      }
    }
  })

  it('open folds the journal records a killed process left, oldest first, and removes them', async () => {
    const raw = new Level<string, string>(dir)
    await raw.open()
    const key = entryKey(ce('hits', 'r', 0n))
    await raw.put(key, '3')
    await raw.put('w/0000000000000004', JSON.stringify([key, '7', 'meta/lease', '1', 'i/gone', null]))
    await raw.put('w/0000000000000005', JSON.stringify([key, '9', 'meta/lease', '2']))
    await raw.put('i/gone', '{}')
    await raw.close()
    const s = await openStore()
    assert.deepEqual([...asMap(await allEntries(s))], [['hits|r', 9n]])
    assert.equal(await s.meta('lease'), '2')
    assert.equal(await s.idempotencyRecord('gone'), undefined)
    await s.writeDurable([ce('hits', 'r', 10n)])
    await closeStore(s)
    const again = new Level<string, string>(dir)
    await again.open()
    try {
      assert.equal(await again.get(key), '10')
      assert.deepEqual(await again.keys({ gte: 'w/', lt: 'w0' }).all(), [])
    } finally {
      await again.close()
    }
  })

  it('a snapshot file a killed process left half written is removed at open (on a full disk it held the space LevelDB needs)', async () => {
    await closeStore(await openStore())
    writeFileSync(join(dir, 'snapshot.bin.tmp'), Buffer.alloc(1000))
    await closeStore(await openStore())
    assert.equal(existsSync(join(dir, 'snapshot.bin.tmp')), false)
  })

  it('the dir can be reopened after close', async () => {
    const s = await openStore()
    await s.writeDurable([ce('n', 'r', 1n)])
    await closeStore(s)
    const s2 = await openStore()
    assert.equal((await allEntries(s2)).length, 1)
  })
})

describe('Store migration from the version-2 layout (items under tenant and id)', function () {
  this.timeout(20000)
  it('moves items under their identity once, keeps counters, and then reads items by identity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'countd-v2-'))
    try {
      const items = Array.from({ length: 50 }, (_, i) => ({ tenant: `t${i % 3}`, id: `item/${i}` }))
      const db = new Level<string, string>(dir)
      await db.open()
      await db.put('meta/layout', '2')
      for (const { tenant, id } of items) await db.put(`e/s/${leafHex(itemLeaf(itemHash(tenant, id)[0]))}/${tenant}/${id}`, '1')
      await db.put(entryKey({ ds: 'c', key: 'hits', sub: 'r', value: 5n, leaf: counterKind.leafOf('hits', 'r') }), '5')
      await db.close()
      const place = placementOf()
      for (let open = 0; open < 2; open++) {
        const s = await Store.open(dir, place)
        const all = await allEntries(s)
        assert.equal(all.length, 51)
        assert.deepEqual(all.filter(e => e.ds === 's').map(e => `${e.key}|${e.sub}|${e.value}`).sort(), items.map(i => `${i.tenant}|${i.id}|1`).sort())
        assert.equal(all.find(e => e.ds === 'c')?.value, 5n)
        const refs = items.map(i => place({ ds: 's', key: i.tenant, sub: i.id, value: 1n })).map(p => ({ leaf: p.leaf, identity: p.identity as string }))
        assert.equal((await s.entriesByIdentity('s', refs)).length, 50)
        assert.equal(open === 0 ? s.migrated?.entries : s.migrated, open === 0 ? 50 : undefined, 'moved once')
        await s.close()
      }
      const raw = new Level<string, string>(dir)
      await raw.open()
      const keys = await raw.keys({ gt: 'e/s/', lt: 'e/s0' }).all()
      assert.ok(keys.length === 50 && keys.every(k => k[10] === '#'), 'only identity keys are left')
      assert.equal(await raw.get('meta/layout'), '3')
      await raw.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('Store migration from the version-1 layout', function () {
  this.timeout(20000)
  it('opens a data dir written by countd 0.1.0 and serves its counters', async () => {
    const { cpSync } = await import('node:fs')
    const dir = mkdtempSync(join(tmpdir(), 'countd-v1-'))
    try {
      // test/fixtures/datadir-v0.1.0: made by `countd start` of release 0.1.0
      // (commit d26fe2e) and these increments: hits +5, big +(2^53-1) twice, a.b~c-d_e +3.
      cpSync(new URL('../../../test/fixtures/datadir-v0.1.0', import.meta.url), dir, { recursive: true })
      let s = await Store.open(dir, placementOf())
      const m = new Map((await allEntries(s)).map(e => [e.key, e]))
      assert.equal(m.get('hits')?.value, 5n)
      assert.equal(m.get('big')?.value, 2n ** 54n - 2n)
      assert.equal(m.get('a.b~c-d_e')?.value, 3n)
      assert.equal(m.get('hits')?.leaf, counterKind.leafOf('hits', ''))
      assert.ok(await s.identity() !== undefined, 'the node keeps its identity')
      assert.equal((await s.members()).length, 1)
      await s.close()
      // Migrated once: a second open finds the same entries and no old keys.
      s = await Store.open(dir, placementOf())
      assert.equal((await allEntries(s)).length, 3)
      await s.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
