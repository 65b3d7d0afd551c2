import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from '../../src/store/store.js'
import { Replica, isRetired, type Member, type Entry } from '../../src/replica.js'
import { RETIRE_GRACE_MS } from '../../src/membership.js'
import { counterEntryHash } from '../../src/crdt/gcounter.js'

/** A counter entry. */
const ce = (key: string, sub: string, value: bigint): Entry => ({ ds: 'c', key, sub, value })
import { DigestTree, leafOf, nodePrefix } from '../../src/crdt/digest.js'

describe('Replica (with a real Store)', function () {
  this.timeout(20000)
  let dir: string
  let stores: Store[] = []

  async function openReplica (id = 'me'): Promise<{ r: Replica, s: Store }> {
    const s = await Store.open(dir)
    stores.push(s)
    const r = new Replica(id, s)
    await r.load()
    return { r, s }
  }
  async function close (s: Store): Promise<void> {
    await s.close()
    stores = stores.filter(x => x !== s)
  }

  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-replica-')) })
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })

  it('incrementMany returns each counter\'s new value and reports the durable delta', async () => {
    const { r } = await openReplica()
    const deltas: Entry[][] = []
    // The entries as the delta's reader sees them (the replica hands over its placed entries: leaf and all).
    r.localDelta.add(es => { deltas.push(es.map(({ ds, key, sub, value }) => ({ ds, key, sub, value }))) })
    assert.deepEqual(await r.incrementMany([['a', 2n], ['b', 3n]]), [2n, 3n])
    assert.deepEqual(await r.incrementMany([['a', 5n]]), [7n])
    assert.equal(await r.increment('b', 2n ** 60n), 3n + 2n ** 60n)
    assert.equal(r.value('a'), 7n)
    assert.equal(r.value('unknown'), 0n)
    assert.deepEqual(r.entriesOf('a'), [['me', 7n]])
    assert.deepEqual(deltas[0], [ce('a', 'me', 2n), ce('b', 'me', 3n)])
    assert.deepEqual(deltas[1], [ce('a', 'me', 7n)])
  })

  it('concurrent increments each get a distinct new value and none is lost', async () => {
    const { r } = await openReplica()
    const n = 100
    const values = await Promise.all(Array.from({ length: n }, async () => await r.increment('hits', 1n)))
    assert.equal(r.value('hits'), BigInt(n))
    assert.deepEqual([...values].sort((x, y) => Number(x - y)), Array.from({ length: n }, (_, i) => BigInt(i + 1)))
  })

  it('mergeRemote returns only the entries that grew, and merges point-wise max', async () => {
    const { r } = await openReplica()
    await r.increment('hits', 4n)
    const grown = await r.mergeRemote([
      ce('hits', 'p1', 10n),
      ce('hits', 'p2', 3n),
      ce('other', 'p1', 1n)
    ])
    assert.equal(grown.length, 3)
    assert.equal(r.value('hits'), 17n)
    const again = await r.mergeRemote([
      ce('hits', 'p1', 10n), // same
      ce('hits', 'p2', 2n), // older
      ce('hits', 'me', 1n), // older copy of our own
      ce('hits', 'p2', 6n) // newer
    ])
    assert.deepEqual(again, [ce('hits', 'p2', 6n)])
    assert.equal(r.value('hits'), 20n)
    assert.deepEqual(await r.mergeRemote([ce('hits', 'p2', 6n)]), [])
  })

  it('contributors from remote state become members', async () => {
    const { r } = await openReplica()
    const seen: Member[] = []
    r.members.added.add(m => { seen.push(m) })
    await r.mergeRemote([ce('x', 'p9', 1n)])
    assert.ok(r.members.has('p9'))
    assert.deepEqual(seen.map(m => m.id), ['p9'])
    assert.deepEqual(r.members.active().map(m => m.id), ['p9'])
  })

  it('a remote entry for our own id moves our next increment past it', async () => {
    const { r } = await openReplica()
    await r.increment('x', 1n)
    await r.mergeRemote([ce('x', 'me', 10n)])
    assert.equal(await r.increment('x', 1n), 11n)
    assert.deepEqual(r.entriesOf('x'), [['me', 11n]])
  })

  it('anti-entropy reads counters from memory: the same entries the store holds, under any digest-tree nodes, before and after a restart', async () => {
    const { r, s } = await openReplica()
    const names = Array.from({ length: 3000 }, (_, i) => `n${i}`)
    await r.incrementMany(names.map((n, i) => [n, BigInt(i + 1)]))
    await r.incrementMany([['late', 1n]])
    await r.mergeRemote(names.filter((_, i) => i % 3 === 0).map(n => ce(n, 'other', 5n))) // counters of two replicas
    const key = (e: Entry): string => `${e.ds}|${e.key}|${e.sub}|${e.value}`
    const check = async (rep: Replica, store: Store): Promise<void> => {
      let seed = 11
      const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
      for (const depth of [0, 1, 2, 5]) {
        for (const count of [1, 3, 40]) {
          const nodes = [...new Set(Array.from({ length: count }, () => rand(16 ** depth)))].sort((a, b) => a - b)
          const stored = (await store.entriesUnder('c', nodes.map(n => nodePrefix(depth, n)))).map(key).sort()
          assert.deepEqual((await rep.entriesUnder(depth, nodes)).filter(e => e.ds === 'c').map(key).sort(), stored, `depth ${depth}, ${nodes.length} nodes`)
        }
      }
    }
    await check(r, s)
    // Slot claims come from memory too; with no items at all the store is not asked for them.
    const slotKey = (slot: number): string => String(slot)
    await r.mergeRemote([{ ds: 'l', key: slotKey(7), sub: 'other/other', value: 1234n }, { ds: 'l', key: slotKey(900), sub: 'other/other', value: 99n }])
    const slots = (await r.entriesUnder(0, [0])).filter(e => e.ds === 'l').map(key).sort()
    assert.deepEqual(slots, (await s.entriesUnder('l', [''])).map(key).sort())
    assert.equal(slots.length, 2)
    await r.mergeRemote([ce('later', 'other', 2n), ce('n1', 'other', 9n)]) // the index, once built, follows new counters
    await check(r, s)
    assert.ok((await r.entriesUnder(0, [0])).some(e => e.key === 'later'))
    await s.close()
    stores = stores.filter(x => x !== s)
    const { r: again, s: s2 } = await openReplica()
    await check(again, s2)
  })

  it('the digest tracks every entry', async () => {
    const { r } = await openReplica()
    await r.incrementMany([['a', 1n], ['b', 2n]])
    await r.increment('a', 3n)
    await r.mergeRemote([ce('a', 'p', 5n), ce('c', 'p', 2n ** 70n)])
    await r.mergeRemote([ce('a', 'p', 6n)])
    const t = new DigestTree()
    for (const name of r.counters.names()) for (const [rep, count] of r.counters.subsOf(name)) t.toggle(leafOf(name), ...counterEntryHash(name, rep, count))
    for (let d = 0; d < t.levels.length; d++) assert.deepEqual(r.digest.levels[d], t.levels[d])
    assert.deepEqual(
      (await r.entriesUnder(0, [0])).map(e => `${e.key}/${e.sub}/${e.value}`).sort(),
      ['a/me/4', 'a/p/6', 'b/me/2', `c/p/${2n ** 70n}`])
  })

  it('reload after close restores values, own counts and remote entries', async () => {
    let { r, s } = await openReplica()
    await r.increment('hits', 5n)
    await r.increment('big', 2n ** 53n - 1n)
    await r.increment('big', 2n ** 53n - 1n)
    await r.mergeRemote([ce('hits', 'p1', 7n)])
    r.gate.markJoined() // p1 synced with us: the joined flag is persisted too
    await close(s)
    ;({ r, s } = await openReplica())
    assert.equal(r.value('hits'), 12n)
    assert.equal(r.value('big'), 2n ** 54n - 2n)
    assert.ok(r.members.has('me'))
    assert.ok(r.members.has('p1'))
    // own count continues from the persisted one
    assert.equal(await r.increment('hits', 1n), 13n)
    assert.deepEqual(r.entriesOf('hits').sort(), [['me', 6n], ['p1', 7n]])
  })

  it('a replica that knows other members writes only once one has synced with it', async () => {
    let { r, s } = await openReplica()
    await r.mergeRemote([ce('x', 'p1', 1n)])
    assert.equal(r.writable(), false)
    const pending = r.increment('x', 1n)
    r.gate.markJoined()
    assert.equal(await pending, 2n)
    await close(s)
    ;({ r, s } = await openReplica())
    assert.equal(r.writable(), true)
    await close(s)
  })

  it('an increment that cannot be made durable is rejected, reported and not counted', async () => {
    const { r, s } = await openReplica()
    await r.increment('x', 1n)
    const failures: Array<Error | undefined> = []
    const deltas: Entry[][] = []
    s.health.onChange = e => { failures.push(e) }
    r.localDelta.add(es => { deltas.push(es) })
    await close(s)
    await assert.rejects(r.increment('x', 5n))
    assert.equal(failures.length, 1)
    assert.equal(deltas.length, 0)
    assert.equal(r.value('x'), 1n)
  })

  describe('retire / isRetired', () => {
    it('isRetired: retired until seen more than RETIRE_GRACE_MS after the retirement', () => {
      assert.equal(isRetired({ id: 'a', addrs: [], lastSeen: 10 }), false)
      assert.equal(isRetired({ id: 'a', addrs: [], lastSeen: 10, retiredAt: 11 }), true)
      // A sighting processed late (seconds after the retirement) does not bring it back.
      assert.equal(isRetired({ id: 'a', addrs: [], lastSeen: 5000, retiredAt: 11 }), true)
      assert.equal(isRetired({ id: 'a', addrs: [], lastSeen: 11 + RETIRE_GRACE_MS - 1, retiredAt: 11 }), true)
      assert.equal(isRetired({ id: 'a', addrs: [], lastSeen: 11 + RETIRE_GRACE_MS, retiredAt: 11 }), false)
    })

    it('retires a known member but never self or an unknown id; counts stay', async () => {
      const { r } = await openReplica()
      await r.mergeRemote([ce('x', 'p1', 3n)])
      r.members.note('p2', ['/ip4/10.0.0.2/tcp/7778'], 1000)
      assert.equal(r.members.retire('me', 5000), false)
      assert.equal(r.members.retire('nobody', 5000), false)
      assert.ok(!r.members.has('nobody'))
      assert.equal(r.members.retire('p1', 5000), true)
      assert.ok(isRetired(r.members.get('p1')!))
      assert.deepEqual(r.members.active().map(m => m.id), ['p2'])
      assert.equal(r.value('x'), 3n)
      // retiring at a time before the last sighting still retires it
      assert.equal(r.members.retire('p2', 10), true)
      assert.ok(isRetired(r.members.get('p2')!))
      assert.deepEqual(r.members.active(), [])
    })

    it('a retired member seen again later is active again; retirement merges as max', async () => {
      const { r } = await openReplica()
      r.members.note('p1', [], 1000)
      r.members.retire('p1', 2000)
      r.members.merge({ id: 'p1', addrs: [], lastSeen: 1500 })
      assert.ok(isRetired(r.members.get('p1')!), 'an older sighting does not un-retire')
      r.members.merge({ id: 'p1', addrs: [], lastSeen: 3000 })
      assert.ok(isRetired(r.members.get('p1')!), 'seen within the grace: still retired')
      r.members.merge({ id: 'p1', addrs: [], lastSeen: 2000 + RETIRE_GRACE_MS })
      assert.ok(!isRetired(r.members.get('p1')!))
      r.members.merge({ id: 'p1', addrs: [], lastSeen: 0, retiredAt: 4000 + RETIRE_GRACE_MS })
      assert.ok(isRetired(r.members.get('p1')!))
      assert.equal(r.members.get('p1')!.retiredAt, 4000 + RETIRE_GRACE_MS)
    })

    it('retirement survives a restart', async () => {
      let { r, s } = await openReplica()
      r.members.note('p1', ['/ip4/10.0.0.1/tcp/7778'], 1000)
      r.members.note('p2', [], 1000)
      r.members.retire('p1', 2000)
      await close(s)
      ;({ r, s } = await openReplica())
      assert.ok(isRetired(r.members.get('p1')!))
      assert.deepEqual(r.members.get('p1')!.addrs, ['/ip4/10.0.0.1/tcp/7778'])
      assert.deepEqual(r.members.active().map(m => m.id), ['p2'])
    })
  })
})

describe('Replica items (with a real Store)', function () {
  this.timeout(20000)
  let dir: string
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-items-')) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  it('counts each (tenant, id) once, across requests, concurrent requests and restarts', async () => {
    let s = await Store.open(dir)
    let r = new Replica('me', s)
    await r.load()
    assert.deepEqual(await r.addItems([{ tenant: 't1', id: 'a' }, { tenant: 't1', id: 'a' }, { tenant: 't2', id: 'a' }]), { accepted: 3, added: 2 })
    const both = await Promise.all([
      r.addItems([{ tenant: 't1', id: 'b' }, { tenant: 't1', id: 'c' }]),
      r.addItems([{ tenant: 't1', id: 'b' }, { tenant: 't1', id: 'a' }])
    ])
    assert.equal(both[0].added + both[1].added, 2, 'b counted once though two requests carried it')
    assert.equal(r.items.count('t1'), 3)
    assert.equal(r.items.count('t2'), 1)
    assert.equal(r.items.count('nobody'), 0)
    assert.ok(r.items.has('t1', 'c'))
    assert.ok(!r.items.has('t2', 'c'))
    await s.close()
    s = await Store.open(dir)
    r = new Replica('me', s)
    await r.load()
    assert.equal(r.items.count('t1'), 3)
    assert.deepEqual(await r.addItems([{ tenant: 't1', id: 'c' }, { tenant: 't1', id: 'd/é ü' }]), { accepted: 2, added: 1 })
    assert.ok(r.items.has('t1', 'd/é ü'))
    await s.close()
  })

  it('fingerprints under any digest-tree nodes are the hashes of the entries there, from memory; entriesAt reads those asked for, folded or not yet', async () => {
    const s = await Store.open(dir)
    try {
      const r = new Replica('me', s)
      await r.load()
      const ids = Array.from({ length: 3000 }, (_, i) => ({ tenant: `t${i % 7}`, id: `id-${i}/ü` }))
      await r.addItems(ids.slice(0, 2000))
      await r.incrementMany([['hits', 3n], ['views', 1n]])
      await new Promise(resolve => setTimeout(resolve, 700)) // the fold of those lands (FOLD_DELAY_MS)
      await r.addItems(ids.slice(2000)) // still in the journal only
      await r.mergeRemote([{ ds: 's', key: 't9', sub: 'remote', value: 1n }])
      const key = (e: Entry): string => `${e.ds}|${e.key}|${e.sub}|${e.value}`
      let seed = 5
      const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
      for (const depth of [0, 1, 3, 5]) {
        const nodes = [...new Set(Array.from({ length: 1 + rand(30) }, () => rand(16 ** depth)))].sort((a, b) => a - b)
        const under = await r.entriesUnder(depth, nodes)
        const f = await r.fingerprintsUnder(depth, nodes)
        assert.equal(f.count, under.length, `depth ${depth}`)
        assert.equal(f.hashes.length, 2 * f.count)
        const all = await f.entriesAt(Array.from({ length: f.count }, (_, i) => i))
        assert.deepEqual(all.map(key).sort(), under.map(key).sort(), `depth ${depth}: every entry, by index`)
        // Each index's entry has that index's fingerprint.
        const picked = Array.from({ length: f.count }, (_, i) => i).filter(() => rand(3) === 0)
        for (const i of picked) {
          const [e] = await f.entriesAt([i])
          assert.deepEqual([f.hashes[2 * i], f.hashes[2 * i + 1]], r.kinds.get(e.ds)!.hashOf(e.key, e.sub, e.value))
        }
      }
      assert.equal((await r.fingerprintsUnder(0, [0])).count, 3003)
    } finally {
      await s.close()
    }
  })
})

describe('Replica snapshot (clean stop -> fast start)', function () {
  this.timeout(20000)
  let dir: string
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-snap-')) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  async function open (): Promise<{ r: Replica, s: Store, from: string }> {
    const s = await Store.open(dir)
    const r = new Replica('me', s)
    const from = await r.load()
    return { r, s, from }
  }

  it('a clean stop leaves a snapshot the next starts load, equal to a full rebuild, until an entry is written', async () => {
    let { r, s, from } = await open()
    assert.equal(from, 'entries')
    await r.incrementMany([['a', 3n], ['b', 2n ** 70n]])
    await r.addItems([{ tenant: 't', id: 'x' }, { tenant: 't', id: 'y' }, { tenant: 'u', id: 'x' }])
    await r.mergeRemote([ce('a', 'p1', 4n)])
    r.gate.markJoined()
    const digest = r.digest.levels.map(l => [...l.slice(0, 64)])
    await s.saveSnapshot(() => r.snapshot())
    await s.close()
    ;({ r, s, from } = await open())
    assert.equal(from, 'snapshot')
    assert.equal(r.value('a'), 7n)
    assert.equal(r.value('b'), 2n ** 70n)
    assert.equal(r.items.count('t'), 2)
    assert.ok(r.items.has('u', 'x'))
    assert.deepEqual(r.digest.levels.map(l => [...l.slice(0, 64)]), digest)
    assert.equal(r.entryCount, 6)
    // A start without writes since (a crash, say) takes it again.
    await s.close()
    ;({ r, s, from } = await open())
    assert.equal(from, 'snapshot')
    assert.equal(r.value('a'), 7n)
    // Writes after a snapshot was taken: it must not be used again.
    await r.increment('a', 1n)
    await s.close()
    ;({ r, s, from } = await open())
    assert.equal(from, 'entries')
    assert.equal(r.value('a'), 8n)
    assert.equal(r.items.count('t'), 2)
    assert.deepEqual(r.digest.levels.map(l => [...l.slice(0, 64)]).slice(0, 1).length, 1)
    await s.close()
  })

  it('a damaged snapshot is ignored and the entries are replayed', async () => {
    let { r, s } = await open()
    await r.increment('a', 5n)
    await s.saveSnapshot(() => r.snapshot())
    await s.close()
    const { writeFileSync, readFileSync } = await import('node:fs')
    const file = join(dir, 'snapshot.bin')
    const bytes = readFileSync(file)
    bytes[bytes.length >> 1] ^= 0xff
    writeFileSync(file, bytes)
    let from: string
    ;({ r, s, from } = await open())
    assert.equal(from, 'entries')
    assert.equal(r.value('a'), 5n)
    await s.close()
  })
})
