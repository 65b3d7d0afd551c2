// Micro-benchmark of the in-memory item index (no HTTP, no LevelDB): what a
// (tenant, id) pair costs in time and memory at 10,000,000 items.
//
//   node --expose-gc dist/scripts/bench/itemindex.js [--items N] [--tenants T] [--hashes-only]
//
// 1. Hash options on 1,000,000 pairs (ns per pair): the chosen murmur3
//    x86_128 over UTF-8, the same over UTF-16 code units, node:crypto md5 and
//    sha256 one-shot.
// 2. Insert N distinct pairs (`item-<n>` over T tenants) into a HashSet128:
//    ns per add (hash + insert), the structure's bytes per item, process RSS
//    growth per item (after a GC, over the RSS just before the set existed);
//    then duplicate adds, has() of absent pairs, snapshot write and load.
// Heavy (about 30 s and 500 MB at 10M): run once, not in loops.
import { hash as cryptoHash } from 'node:crypto'
import { itemHash } from '../../src/crdt/itemhash.js'
import { HashSet128 } from '../../src/crdt/hashset128.js'

function arg (name: string, fallback: number): number {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const ITEMS = arg('--items', 10_000_000)
const TENANTS = arg('--tenants', 1000)
const HASHES_ONLY = process.argv.includes('--hashes-only')

const gc = (globalThis as { gc?: () => void }).gc
function rssAfterGc (): number {
  if (gc !== undefined) { gc(); gc() }
  return process.memoryUsage().rss
}

const tenantNames = Array.from({ length: TENANTS }, (_, i) => `tenant-${i}`)
const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`

/** MurmurHash3_x86_128 over UTF-16LE code units of tenant NUL id (the rejected alternative). */
function murmurUtf16 (tenant: string, id: string, out: Uint32Array): void {
  const s = tenant + '\u0000' + id
  const n = s.length
  let h1 = 0; let h2 = 0; let h3 = 0; let h4 = 0
  const words = n >>> 1
  const ks = [0, 0, 0, 0]
  let lane = 0
  const mix = (): void => {
    let k1 = ks[0]; let k2 = ks[1]; let k3 = ks[2]; let k4 = ks[3]
    k1 = Math.imul(k1, 0x239b961b); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, 0xab0e9789); h1 ^= k1
    h1 = (h1 << 19) | (h1 >>> 13); h1 = (h1 + h2) | 0; h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0
    k2 = Math.imul(k2, 0xab0e9789); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, 0x38b34ae5); h2 ^= k2
    h2 = (h2 << 17) | (h2 >>> 15); h2 = (h2 + h3) | 0; h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0
    k3 = Math.imul(k3, 0x38b34ae5); k3 = (k3 << 17) | (k3 >>> 15); k3 = Math.imul(k3, 0xa1e38b93); h3 ^= k3
    h3 = (h3 << 15) | (h3 >>> 17); h3 = (h3 + h4) | 0; h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0
    k4 = Math.imul(k4, 0xa1e38b93); k4 = (k4 << 18) | (k4 >>> 14); k4 = Math.imul(k4, 0x239b961b); h4 ^= k4
    h4 = (h4 << 13) | (h4 >>> 19); h4 = (h4 + h1) | 0; h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0
  }
  for (let w = 0; w < words; w++) {
    ks[lane++] = s.charCodeAt(2 * w) | (s.charCodeAt(2 * w + 1) << 16)
    if (lane === 4) { mix(); lane = 0; ks[0] = ks[1] = ks[2] = ks[3] = 0 }
  }
  if ((n & 1) === 1) ks[lane++] = s.charCodeAt(n - 1)
  if (lane > 0) mix() // not the reference tail handling; close enough to price the alternative
  const len = n * 2
  h1 ^= len; h2 ^= len; h3 ^= len; h4 ^= len
  h1 = (h1 + h2 + h3 + h4) | 0; h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0
  out[0] = h1; out[1] = h2; out[2] = h3; out[3] = h4
}

function timeHash (label: string, n: number, fn: (tenant: string, id: string) => void): void {
  // Warm up, then time the second pass so the JIT has settled.
  for (let i = 0; i < 100_000; i++) fn(tenantNames[i % TENANTS], `item-${i}`)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(tenantNames[i % TENANTS], `item-${i}`)
  const ns = Number(process.hrtime.bigint() - t0) / n
  console.log(`  ${label.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/pair`)
}

function compareHashes (): void {
  const n = 1_000_000
  const out = new Uint32Array(4)
  let sink = 0
  console.log(`hash options, ${n.toLocaleString()} pairs (includes building the \`item-<n>\` id string):`)
  timeHash('baseline: build the id string only', n, (t, id) => { sink ^= id.length ^ t.length })
  timeHash('murmur3 x86_128, UTF-8 bytes (chosen)', n, (t, id) => { itemHash(t, id, out); sink ^= out[0] })
  timeHash('murmur3 x86_128, UTF-16 code units', n, (t, id) => { murmurUtf16(t, id, out); sink ^= out[0] })
  timeHash('node:crypto md5 (crypto.hash, buffer)', n, (t, id) => { sink ^= cryptoHash('md5', t + '\u0000' + id, 'buffer')[0] })
  timeHash('node:crypto sha256 (crypto.hash, buffer)', n, (t, id) => { sink ^= cryptoHash('sha256', t + '\u0000' + id, 'buffer')[0] })
  if (sink === 0.5) console.log('unreachable')
}

function indexAtScale (): void {
  const h = new Uint32Array(4)
  // Warm the hash up on throwaway pairs so the timed loop is compiled code.
  for (let i = 0; i < 200_000; i++) itemHash('warm', `w-${i}`, h)
  const rss0 = rssAfterGc()
  const set = new HashSet128()
  console.log(`\nindex: ${ITEMS.toLocaleString()} distinct pairs over ${TENANTS} tenants (ids \`item-<n>\`)`)
  let worstChunkNs = 0
  // RSS without a GC after each chunk: shows the transient cost of shard growth (old arrays awaiting GC).
  let peakRss = rss0
  const chunk = 1_000_000
  const t0 = process.hrtime.bigint()
  for (let base = 0; base < ITEMS; base += chunk) {
    const c0 = process.hrtime.bigint()
    const end = Math.min(ITEMS, base + chunk)
    for (let i = base; i < end; i++) {
      itemHash(tenantNames[i % TENANTS], `item-${i}`, h)
      if (!set.add(h[0], h[1], h[2], h[3])) throw new Error(`collision or bug at ${i}`)
    }
    worstChunkNs = Math.max(worstChunkNs, Number(process.hrtime.bigint() - c0) / (end - base))
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
  }
  const addNs = Number(process.hrtime.bigint() - t0) / ITEMS
  const rss1 = rssAfterGc()
  console.log(`  add (hash + insert)          ${addNs.toFixed(0)} ns/item (slowest 1M chunk ${worstChunkNs.toFixed(0)} ns/item) = ${(1e9 / addNs / 1e6).toFixed(2)} M items/s`)
  console.log(`  structure                    ${mb(set.bytes)} = ${(set.bytes / ITEMS).toFixed(1)} bytes/item (size ${set.size.toLocaleString()})`)
  console.log(`  process RSS growth           ${mb(rss1 - rss0)} = ${((rss1 - rss0) / ITEMS).toFixed(1)} bytes/item (RSS ${mb(rss0)} -> ${mb(rss1)}, highest seen while inserting ${mb(peakRss)} = ${((peakRss - rss0) / ITEMS).toFixed(1)} bytes/item)`)

  const probes = Math.min(ITEMS, 1_000_000)
  let t = process.hrtime.bigint()
  for (let i = 0; i < probes; i++) {
    itemHash(tenantNames[i % TENANTS], `item-${i}`, h)
    if (set.add(h[0], h[1], h[2], h[3])) throw new Error('duplicate added')
  }
  console.log(`  duplicate add                ${(Number(process.hrtime.bigint() - t) / probes).toFixed(0)} ns/item`)
  t = process.hrtime.bigint()
  for (let i = 0; i < probes; i++) {
    itemHash(tenantNames[i % TENANTS], `absent-${i}`, h)
    if (set.has(h[0], h[1], h[2], h[3])) throw new Error('false positive')
  }
  console.log(`  has (absent)                 ${(Number(process.hrtime.bigint() - t) / probes).toFixed(0)} ns/item`)

  t = process.hrtime.bigint()
  const snap = set.toBuffer()
  const writeMs = Number(process.hrtime.bigint() - t) / 1e6
  t = process.hrtime.bigint()
  const loaded = HashSet128.fromBuffer(snap)
  const loadMs = Number(process.hrtime.bigint() - t) / 1e6
  if (loaded.size !== set.size) throw new Error('snapshot lost items')
  console.log(`  snapshot                     ${mb(snap.length)}, toBuffer ${writeMs.toFixed(0)} ms, fromBuffer ${loadMs.toFixed(0)} ms`)
}

compareHashes()
if (!HASHES_ONLY) indexAtScale()
