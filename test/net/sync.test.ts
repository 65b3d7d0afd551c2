// In-process anti-entropy between two real replicas (LevelDB) over a real
// libp2p connection: random divergence converges, and the bytes exchanged
// follow the difference, not the size of the state.
import '../../src/polyfill.js'
import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Store } from '../../src/store/store.js'
import { Replica, type Entry } from '../../src/replica.js'
import { Network } from '../../src/net/network.js'
import { registry } from '../../src/metrics.js'
import { absentFrom } from '../../src/net/sync.js'
import fc from 'fast-check'

interface Side { replica: Replica, store: Store, network: Network }

async function side (dir: string, syncEntryBudget?: number): Promise<Side> {
  const key = await generateKeyPair('Ed25519')
  const store = await Store.open(dir)
  const replica = new Replica(peerIdFromPrivateKey(key).toString(), store)
  await replica.load()
  // Long interval: only the sync on connect runs during the test.
  const network = new Network(replica, key, { listen: ['/ip4/127.0.0.1/tcp/0'], peers: [], gossipBatchMs: 20, syncIntervalMs: 600000, libp2pMetrics: false, syncEntryBudget }, pino({ level: 'silent' }))
  replica.localDelta.add(es => { network.publish(es) })
  return { replica, store, network }
}

async function syncBytes (): Promise<number> {
  const m = await registry.getSingleMetric('countd_sync_bytes_total')?.get()
  return (m?.values ?? []).reduce((a, v) => a + v.value, 0)
}

function fingerprint (r: Replica): string {
  return [...r.counters.names()].map(n => `${n}=${r.counters.subsOf(n).map(e => e.join()).sort().join()}`).sort().join(';')
}

async function until (cond: () => boolean, ms = 20000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('anti-entropy between two replicas (in process, real libp2p + LevelDB)', function () {
  this.timeout(60000)
  let dir: string
  const sides: Side[] = []

  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-sync-')) })
  afterEach(async () => {
    for (const s of sides.splice(0)) {
      await s.network.stop().catch(() => {})
      await s.store.close().catch(() => {})
    }
    rmSync(dir, { recursive: true, force: true })
  })

  /** Two replicas sharing `common` entries, each with `own` more, then connected: bytes spent converging. */
  async function converge (common: number, own: number): Promise<number> {
    const a = await side(join(dir, `a${common}-${own}`))
    const b = await side(join(dir, `b${common}-${own}`))
    sides.push(a, b)
    const shared: Entry[] = []
    for (let i = 0; i < common; i++) shared.push({ ds: 'c', key: `n${i}`, sub: a.replica.id, value: BigInt(i + 1) })
    // Own writes first: a replica that knows another member waits to join before writing.
    await a.replica.incrementMany(Array.from({ length: own }, (_, i) => [`a${i}`, BigInt(i + 1)]))
    await b.replica.incrementMany(Array.from({ length: own }, (_, i) => [`n${i * 7 % Math.max(1, common)}`, 3n]))
    await a.replica.mergeRemote(shared)
    await b.replica.mergeRemote(shared)
    await a.network.start()
    await b.network.start()
    const before = await syncBytes()
    await b.network.connect([multiaddr(`${a.network.listenAddrs()[0]}/p2p/${a.replica.id}`)])
    await until(() => fingerprint(a.replica) === fingerprint(b.replica))
    assert.deepEqual([...a.replica.digest.levels[0]], [...b.replica.digest.levels[0]])
    return await syncBytes() - before
  }

  it('members reconnect, and consistent reads answer, after libp2p forgets their addresses (issue 15)', async () => {
    const a = await side(join(dir, 'fa'))
    const b = await side(join(dir, 'fb'))
    sides.push(a, b)
    await a.network.start()
    await b.network.start()
    await b.network.connect([multiaddr(`${a.network.listenAddrs()[0]}/p2p/${a.replica.id}`)])
    await until(() => a.replica.members.has(b.replica.id) && b.replica.members.has(a.replica.id))
    await b.replica.incrementMany([['x', 5n]])
    // What chaos seed 10015 showed after a SIGSTOP: the connection is gone
    // and each side's libp2p peer store no longer has the other's addresses.
    // (The libp2p node is private to Network; tests reach in.)
    const nodeOf = (s: Side): any => (s.network as any).node
    await nodeOf(a).hangUp(nodeOf(b).peerId)
    await nodeOf(a).peerStore.delete(nodeOf(b).peerId)
    await nodeOf(b).peerStore.delete(nodeOf(a).peerId)
    assert.deepEqual(await a.network.consistentRead('c', 'x', 5000), [])
    assert.equal(a.replica.value('x'), 5n)
    await until(() => nodeOf(a).getPeers().some((p: any) => p.toString() === b.replica.id), 5000)
  })

  it('random divergence converges, and the bytes follow the difference, not the state', async () => {
    const small = await converge(1000, 20)
    const big = await converge(20000, 20)
    console.log(`      sync bytes, 20 changed entries each side: ${small} with 1k shared, ${big} with 20k shared`)
    // 20x the state, same difference: far less than 20x the bytes.
    assert.ok(big < small * 5, `bytes for 20k shared entries (${big}) should not scale with the state (1k: ${small})`)
    assert.ok(big < 200000, `20 changed entries cost ${big} bytes`)
  })
})

describe('anti-entropy of item sets (in process)', function () {
  this.timeout(60000)
  let dir: string
  const sides: Side[] = []
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-sync-items-')) })
  afterEach(async () => {
    for (const s of sides.splice(0)) {
      await s.network.stop().catch(() => {})
      await s.store.close().catch(() => {})
    }
    rmSync(dir, { recursive: true, force: true })
  })

  it('a replica missing 100 of 20,000 items receives about those, not the set', async () => {
    const a = await side(join(dir, 'a'))
    const b = await side(join(dir, 'b'))
    sides.push(a, b)
    const all = Array.from({ length: 20000 }, (_, i) => ({ tenant: `t${i % 10}`, id: `item-${i}` }))
    for (let i = 0; i < all.length; i += 10000) await a.replica.addItems(all.slice(i, i + 10000))
    await b.replica.addItems(all.slice(0, 10000))
    await b.replica.addItems(all.slice(10000, 19900))
    await a.network.start()
    await b.network.start()
    const sentBefore = await syncEntriesSent()
    await b.network.connect([multiaddr(`${a.network.listenAddrs()[0]}/p2p/${a.replica.id}`)])
    await until(() => b.replica.items.items === 20000)
    for (let t = 0; t < 10; t++) assert.equal(b.replica.items.count(`t${t}`), 2000)
    assert.ok(b.replica.items.has('t9', 'item-19999'))
    const sent = await syncEntriesSent() - sentBefore
    console.log(`      entries sent to repair 100 missing items of 20,000: ${sent}`)
    assert.ok(sent < 2000, `sent ${sent} entries for 100 missing items`)
  })

  it('where the differing subtrees hold several entries each, the sides swap fingerprints and send only what the other lacks', async () => {
    // 10,000 entries: the descent stops where a node holds ~2.4 (the fingerprint path; 10M items: ~10 a leaf).
    const a = await side(join(dir, 'a'))
    const b = await side(join(dir, 'b'))
    sides.push(a, b)
    const all = Array.from({ length: 10000 }, (_, i) => ({ tenant: `t${i % 10}`, id: `item-${i}` }))
    await a.replica.addItems(all)
    await b.replica.addItems(all.filter((_, i) => i % 100 !== 7)) // b lacks 100, spread over the tree
    await b.replica.addItems([{ tenant: 't0', id: 'only-b' }]) // and a lacks one
    await a.network.start()
    await b.network.start()
    const sentBefore = await syncEntriesSent()
    await b.network.connect([multiaddr(`${a.network.listenAddrs()[0]}/p2p/${a.replica.id}`)])
    await until(() => b.replica.items.items === 10001 && a.replica.items.items === 10001)
    assert.deepEqual([...a.replica.digest.levels[0]], [...b.replica.digest.levels[0]])
    assert.ok(b.replica.items.has('t7', 'item-107') && a.replica.items.has('t0', 'only-b'))
    const sent = await syncEntriesSent() - sentBefore
    console.log(`      entries sent to repair 101 missing items of 10,000 by fingerprints: ${sent}`)
    // Whole subtrees would be ~2.4 entries a missing item from each side (~480).
    assert.ok(sent <= 110, `sent ${sent} entries for 101 missing items`)
  })

  it('a difference over the budget is repaired in several exchanges, back to back (an empty side, a partial one); a consistent count runs them all', async () => {
    const BUDGET = 300
    const a = await side(join(dir, 'a'), BUDGET)
    const b = await side(join(dir, 'b'), BUDGET)
    const c = await side(join(dir, 'c'), BUDGET)
    sides.push(a, b, c)
    await a.replica.incrementMany(Array.from({ length: 4000 }, (_, i): [string, bigint] => [`n${i}`, BigInt(1 + (i % 5))]))
    const items = Array.from({ length: 6000 }, (_, i) => ({ tenant: `t${i % 3}`, id: `item-${i}` }))
    await a.replica.addItems(items)
    // c has most items already: what it lacks is spread over the whole tree.
    await c.replica.addItems(items.slice(0, 5000))
    const partialBefore = await syncRounds('partial')
    for (const s of [a, b, c]) await s.network.start()
    const target = [multiaddr(`${a.network.listenAddrs()[0]}/p2p/${a.replica.id}`)]
    await b.network.connect(target)
    await c.network.connect(target)
    await until(() => b.replica.counters.keys === 4000 && b.replica.items.items === 6000 && c.replica.items.items === 6000 && c.replica.counters.keys === 4000)
    assert.equal(b.replica.value('n3999'), 5n)
    assert.ok(await syncRounds('partial') - partialBefore >= 4, 'several partial exchanges')
    // A consistent count over the budget: each member's exchanges run until one is complete.
    await a.replica.addItems(Array.from({ length: 2000 }, (_, i) => ({ tenant: 't0', id: `late-${i}` })))
    assert.deepEqual(await b.network.consistentSync(20000), [])
    assert.equal(b.replica.items.count('t0'), 4000)
  })
})


async function syncRounds (outcome: string): Promise<number> {
  const m = await registry.getSingleMetric('countd_sync_rounds_total')?.get()
  return (m?.values ?? []).filter(v => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0)
}

async function syncEntriesSent (): Promise<number> {
  const m = await registry.getSingleMetric('countd_sync_entries_sent_total')?.get()
  return (m?.values ?? []).reduce((a, v) => a + v.value, 0)
}

describe('fingerprint matching', () => {
  it('absentFrom names exactly the fingerprints of one side that the other lacks (property)', () => {
    // Few distinct words, so equal low or high words (probe collisions) are common.
    const word = fc.oneof(fc.constantFrom(0, 1, 0x9e3779b1, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }))
    const prints = fc.array(fc.tuple(word, word), { maxLength: 300 })
    fc.assert(fc.property(prints, prints, (these, others) => {
      const flat = (ps: Array<[number, number]>): Uint32Array => Uint32Array.from(ps.flat())
      const known = new Set(others.map(([a, b]) => `${a}/${b}`))
      const expected = these.flatMap(([a, b], i) => known.has(`${a}/${b}`) ? [] : [i])
      assert.deepEqual(absentFrom(flat(these), flat(others)), expected)
    }), { numRuns: 300 })
  })
})
