// Section 10: items at scale (issue 10). N distinct items over 1,000 tenants
// in one node: load rate, RSS per item, restart (snapshot and replay paths);
// catch-up of a second node that lacks exactly 1 % of them; bytes on the
// wire per item on a 3-node cluster.
import { join } from 'node:path'
import type { Cluster, CountdNode } from '../cluster.js'
import { cluster3 } from './replication.js'
import type { Ctx, Row, SectionResult } from './types.js'
import {
  dirBytes, hasSs, http, makeNode, median, now, perProtoRows, progress, removeDir, rssBytes, scrape, sleep, stopCluster, stopNode,
  tcpBytesSent, tempDir, waitUntil, wirePerUnit, wireSnapshot
} from './util.js'

const MB = 1024 * 1024
const TENANTS = 1000
/** Items per POST /items while loading (the route's maximum) and requests in flight. */
const LOAD_PER = 10000
const LOAD_PARALLEL = 3
/** Fixed-width names, so the bytes of an item are known: 4-byte tenant, 16-byte id. */
const tenant = (i: number): string => `t${String(i % TENANTS).padStart(3, '0')}`
const loadId = (i: number): string => `x${String(i).padStart(15, '0')}`
const ITEM_BYTES = 4 + 16
/** Wire test: items/s sent to one node of three, items per request, seconds per run. */
const WIRE_RATE = 5000
const WIRE_PER = 50

const itemsBody = (from: number, to: number, id: (i: number) => string): string => {
  const parts: string[] = []
  for (let i = from; i < to; i++) parts.push(`{"id":"${id(i)}","tenant":"${tenant(i)}"}`)
  return `[${parts.join(',')}]`
}

async function postItems (url: string, body: string, expectAdded: number): Promise<void> {
  const r = await http('POST', `${url}/items`, body, { 'content-type': 'application/json' }, 120000)
  if (r.status !== 200) throw new Error(`POST /items: ${r.status} ${r.body.slice(0, 200)}`)
  const added = (JSON.parse(r.body) as { added: number }).added
  if (added !== expectAdded) throw new Error(`POST /items added ${added} of ${expectAdded} new items`)
}

/** Load items [from, to) (each new to the node), LOAD_PER per request, LOAD_PARALLEL in flight; returns ms. */
async function loadItems (node: CountdNode, from: number, to: number): Promise<number> {
  const t0 = now()
  let next = from
  let batches = 0
  await Promise.all(Array.from({ length: LOAD_PARALLEL }, async () => {
    while (next < to) {
      const a = next
      next = Math.min(to, next + LOAD_PER)
      await postItems(node.url, itemsBody(a, next, loadId), next - a)
      if (++batches % 100 === 0) progress(`  ${node.name}: loaded ~${(a - from + LOAD_PER).toLocaleString('en-US')} / ${(to - from).toLocaleString('en-US')}`)
    }
  }))
  return now() - t0
}

/** Every tenant's count on the node (GET /tenants, one page). */
async function tenantCounts (node: CountdNode): Promise<Map<string, number>> {
  const r = await http('GET', `${node.url}/tenants?limit=10000`)
  if (r.status !== 200) throw new Error(`GET /tenants: ${r.status} ${r.body.slice(0, 200)}`)
  const page = JSON.parse(r.body) as { tenants: Array<{ tenant: string, count: number }>, next: unknown }
  return new Map(page.tenants.map(t => [t.tenant, t.count]))
}

/** True if each of the TENANTS tenants has exactly `per` items on the node. */
async function allTenantsAt (node: CountdNode, per: number): Promise<boolean> {
  const m = await tenantCounts(node)
  if (m.size !== TENANTS) return false
  for (const v of m.values()) if (v !== per) return false
  return true
}

/** The same through GET /items/:tenant/count for every tenant (16 in flight); throws naming the first mismatch. */
async function checkEveryCount (node: CountdNode, per: number): Promise<void> {
  let t = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (t < TENANTS) {
      const name = tenant(t++)
      const got = await itemCount(node, name)
      if (got !== per) throw new Error(`${node.name}: ${name} has ${got} items, expected ${per}`)
    }
  }))
}

async function itemCount (node: CountdNode, name: string): Promise<number> {
  const r = await http('GET', `${node.url}/items/${name}/count`, undefined, {}, 2000)
  if (r.status !== 200) throw new Error(`count ${name}: ${r.status}`)
  return (JSON.parse(r.body) as { count: number }).count
}

/**
 * Restart after `how`: spawn, and meanwhile poll GET /items/<tenant>/count of the
 * first and the last-loaded tenant until both answer the full count.
 * Returns ms from spawn to the ready line and to the full counts.
 */
async function restart (node: CountdNode, how: 'SIGKILL' | 'SIGTERM', per: number, timeoutMs: number): Promise<{ ready: number, counted: number }> {
  await node.kill(how)
  const t0 = now()
  let ready = NaN
  let failed: unknown
  const started = node.start(timeoutMs).then(() => { ready = now() - t0 }, err => { failed = err })
  const counted = await waitUntil(async () => {
    if (failed !== undefined) return true
    return await itemCount(node, tenant(0)) === per && await itemCount(node, tenant(TENANTS - 1)) === per
  }, timeoutMs, 10) - t0
  await started
  if (failed !== undefined) throw failed
  if (!Number.isFinite(counted)) throw new Error(`${node.name}: counts not back ${timeoutMs} ms after a restart after ${how}`)
  return { ready, counted }
}

/** Send items to `node` at a steady rate (one request of `per` every per/rate s, at most 32 in flight); returns the items acknowledged. */
async function steadyItems (node: CountdNode, rate: number, per: number, durationSec: number, id: (k: number) => string): Promise<{ acked: number, late: number }> {
  const interval = 1000 * per / rate
  const t0 = now()
  const inFlight = new Set<Promise<void>>()
  let acked = 0
  let late = 0
  let failed: unknown
  for (let k = 0; now() - t0 < durationSec * 1000 && failed === undefined; k++) {
    const due = t0 + k * interval
    if (due > now()) await sleep(due - now())
    if (inFlight.size >= 32) { late++; await Promise.race(inFlight) }
    const parts: string[] = []
    for (let j = k * per; j < (k + 1) * per; j++) parts.push(`{"id":"${id(j)}","tenant":"${tenant(j)}"}`)
    const p: Promise<void> = postItems(node.url, `[${parts.join(',')}]`, per).then(() => { acked += per }, err => { failed = err }).finally(() => inFlight.delete(p))
    inFlight.add(p)
  }
  await Promise.all(inFlight)
  if (failed !== undefined) throw failed
  return { acked, late }
}

async function itemsHeld (node: CountdNode): Promise<number> {
  return (await scrape(node.url)).get('countd_items') ?? NaN
}

export async function itemScale (ctx: Ctx): Promise<SectionResult> {
  const N = ctx.quick ? 1_000_000 : 10_000_000
  const M = N - N / 100 // the 99 % both nodes get while apart
  const per = N / TENANTS
  const nice = N.toLocaleString('en-US')
  const S = `10 items at scale (${nice} items)`
  const quickNote = ctx.quick ? 'quick: 1M items, not the 10M condition' : undefined
  const restartTimeout = ctx.quick ? 60000 : 180000
  const dir = tempDir('s10')
  const a = await makeNode('a', join(dir, 'a'))
  let b: CountdNode | undefined
  let c: Cluster | undefined
  try {
    // ---- one node: load, RSS, restarts ----
    await a.start()
    await sleep(2000)
    const rssEmpty = rssBytes(a.proc!.pid!)
    progress(`loading ${nice} distinct items over ${TENANTS} tenants into one node (POST /items, ${LOAD_PER.toLocaleString('en-US')} per request, ${LOAD_PARALLEL} in flight); empty node RSS ${(rssEmpty / MB).toFixed(0)} MB`)
    const loadMs = await loadItems(a, 0, N)
    if (!await allTenantsAt(a, per)) throw new Error(`after the load, some tenant of A does not hold ${per} items`)
    progress(`  ${(N / (loadMs / 1000)).toFixed(0)} items/s`)
    await sleep(2000)
    const rssLoaded = rssBytes(a.proc!.pid!)
    const disk = dirBytes(a.opts.dataDir)
    progress(`  RSS ${(rssLoaded / MB).toFixed(0)} MB (+${((rssLoaded - rssEmpty) / N).toFixed(1)} B/item), data dir ${(disk / MB).toFixed(0)} MB`)

    const kill: Array<{ ready: number, counted: number, rss: number }> = []
    const term: Array<{ ready: number, counted: number, rss: number }> = []
    // At 10M a round of two restarts takes minutes: at most 3 rounds there, to keep the full run under ~15 min.
    const rounds = ctx.quick ? ctx.repeats : Math.min(ctx.repeats, 3)
    for (let r = 0; r < rounds; r++) {
      // kill -9 first: straight after the load (or after a clean restart, whose snapshot the start consumed) it replays the entries.
      for (const how of ['SIGKILL', 'SIGTERM'] as const) {
        progress(`restart ${r + 1}/${rounds} after ${how === 'SIGKILL' ? 'kill -9 (replay)' : 'SIGTERM (snapshot)'}`)
        const t = await restart(a, how, per, restartTimeout)
        if (!await allTenantsAt(a, per)) throw new Error(`after a restart after ${how}, some tenant of A does not hold ${per} items`)
        await sleep(1000)
        const rss = rssBytes(a.proc!.pid!)
        ;(how === 'SIGKILL' ? kill : term).push({ ...t, rss })
        progress(`  ready line ${t.ready.toFixed(0)} ms, full counts ${t.counted.toFixed(0)} ms after spawn; RSS ${(rss / MB).toFixed(0)} MB`)
      }
    }

    // ---- catch-up: B gets the same first 99 % while not peered with A, then joins ----
    progress(`second node B, not peered: loading the first ${M.toLocaleString('en-US')} items (99 %); A holds all ${nice}`)
    b = await makeNode('b', join(dir, 'b'))
    await b.start()
    const loadBMs = await loadItems(b, 0, M)
    if (!await allTenantsAt(b, M / TENANTS)) throw new Error(`B does not hold ${M / TENANTS} items in every tenant before the join`)
    const heldA = await itemsHeld(a)
    const heldB = await itemsHeld(b)
    if (heldA !== N || heldB !== M) throw new Error(`before the join A holds ${heldA} items (expected ${N}), B ${heldB} (expected ${M})`)
    const ss = hasSs()
    const ports = [a.opts.p2pPort, b.opts.p2pPort]
    const [ma0, mb0] = await Promise.all([scrape(a.url), scrape(b.url)])
    const tcp0 = ss ? tcpBytesSent(ports) : NaN
    progress(`B joins A (POST /config on B); B lacks ${(N - M).toLocaleString('en-US')} items (1 %, ${per - M / TENANTS} in every tenant)`)
    const tJoin = now()
    const j = await http('POST', `${b.url}/config`, JSON.stringify({ actors: [a.hostPort] }), { 'content-type': 'application/json' })
    if (j.status !== 204) throw new Error(`POST /config: ${j.status} ${j.body}`)
    const tDone = await waitUntil(async () => await allTenantsAt(b!, per), ctx.quick ? 60000 : 180000, 25)
    const catchUp = tDone - tJoin
    const tcp1 = ss ? tcpBytesSent(ports) : NaN
    const [ma1, mb1] = await Promise.all([scrape(a.url), scrape(b.url)])
    // A labelled counter shows up in /metrics only once it has been counted: absent before = 0.
    const d = (m0: Map<string, number>, m1: Map<string, number>, k: string): number => (m1.get(k) ?? NaN) - (m0.get(k) ?? 0)
    // Anti-entropy exchanges over the catch-up, per node, role and outcome (why a catch-up that never ends does not).
    const syncRounds: string[] = []
    for (const [who, m0, m1] of [['A', ma0, ma1], ['B', mb0, mb1]] as const) {
      for (const [k, v] of m1) {
        const role = /role="(\w+)"/.exec(k)?.[1]
        const outcome = /outcome="(\w+)"/.exec(k)?.[1]
        const n = v - (m0.get(k) ?? 0)
        if (k.startsWith('countd_sync_rounds_total{') && n > 0) syncRounds.push(`${who} ${role ?? '?'} ${outcome ?? '?'} ${n}`)
      }
    }
    let caughtUpNote = `sync rounds: ${syncRounds.length === 0 ? 'none' : syncRounds.join(', ')}`
    if (Number.isFinite(catchUp)) {
      await checkEveryCount(b, per)
    } else {
      const counts = await tenantCounts(b)
      const short = [...counts.values()].filter(v => v < per).length
      caughtUpNote = `NOT caught up ${((now() - tJoin) / 1000).toFixed(0)} s after the join: ${short} of ${TENANTS} tenants short, B holds ${(await itemsHeld(b)).toLocaleString('en-US')} of ${nice}; ${caughtUpNote}`
    }
    const ex = {
      entriesReceivedB: d(mb0, mb1, 'countd_sync_entries_received_total'),
      itemsReceivedB: d(mb0, mb1, 'countd_items_received_total'),
      entriesSent: d(ma0, ma1, 'countd_sync_entries_sent_total') + d(mb0, mb1, 'countd_sync_entries_sent_total'),
      syncBytes: d(mb0, mb1, 'countd_sync_bytes_total{direction="in"}') + d(mb0, mb1, 'countd_sync_bytes_total{direction="out"}'),
      gossipDeltasB: d(mb0, mb1, 'countd_gossip_deltas_received_total'),
      tcp: tcp1 - tcp0
    }
    progress(`  B ${Number.isFinite(catchUp) ? `caught up in ${catchUp.toFixed(0)} ms` : 'did NOT catch up'}: ${caughtUpNote}; entries sent ${ex.entriesSent}, received by B ${ex.entriesReceivedB} (items ${ex.itemsReceivedB}); anti-entropy frames ${(ex.syncBytes / MB).toFixed(1)} MB; TCP A<->B ${(ex.tcp / MB).toFixed(1)} MB`)
    await stopNode(b)
    b = undefined
    await stopNode(a)

    // ---- bytes on the wire per item, 3 nodes ----
    const wireSec = ctx.quick ? 4 : 10
    c = await cluster3()
    const wire: Array<{ tcp: number, libp2p: number, items: number, rate: number, late: number, perProto: Record<string, number> }> = []
    let lagging = 0
    for (let r = 0; r < ctx.repeats; r++) {
      progress(`run ${r + 1}/${ctx.repeats}: ${WIRE_RATE} new items/s (${WIRE_PER} per request, 16-byte ids, 4-byte tenants) to one node of three for ${wireSec} s`)
      await sleep(300)
      const w0 = await wireSnapshot(c.nodes, 'countd_items_added_total', ss)
      const t0 = now()
      const sent = await steadyItems(c.nodes[0], WIRE_RATE, WIRE_PER, wireSec, k => `w${r % 10}${String(k).padStart(14, '0')}`)
      const sec = (now() - t0) / 1000
      // Until the two others hold what the first holds (the last gossip batch), then the snapshot.
      const target = await itemsHeld(c.nodes[0])
      const caught = await waitUntil(async () => (await Promise.all(c!.nodes.slice(1).map(itemsHeld))).every(x => x === target), 10000, 20)
      if (!Number.isFinite(caught)) lagging++
      const w1 = await wireSnapshot(c.nodes, 'countd_items_added_total', ss)
      const x = { ...wirePerUnit(w0, w1, sent.acked), rate: sent.acked / sec, late: sent.late }
      progress(`  ${x.units} items (${Math.round(x.rate)}/s${sent.late > 0 ? `, ${sent.late} sends waited for a free slot` : ''}): TCP ${x.tcp.toFixed(1)} B/item, libp2p streams ${x.libp2p.toFixed(1)} B/item${Number.isFinite(caught) ? '' : '; the other nodes did NOT hold every item 10 s later'}`)
      wire.push({ tcp: x.tcp, libp2p: x.libp2p, items: x.units, rate: x.rate, late: x.late, perProto: x.perProto })
    }

    const ms = (xs: Array<{ counted: number }>): number[] => xs.map(x => x.counted)
    const growth = (rss: number): number => (rss - rssEmpty) / N
    const rows: Row[] = [
      { section: S, metric: `load rate via POST /items (${LOAD_PER.toLocaleString('en-US')} per request, ${LOAD_PARALLEL} in flight)`, value: N / (loadMs / 1000), unit: 'item/s', runs: [N / (loadMs / 1000)], note: quickNote },
      { section: S, metric: 'RSS growth per item over the empty node, after the load', value: growth(rssLoaded), unit: 'B/item', target: { op: '<=', value: 50 }, runs: [growth(rssLoaded)], note: `${(rssEmpty / MB).toFixed(0)} -> ${(rssLoaded / MB).toFixed(0)} MB` },
      { section: S, metric: '  same, 1 s after a restart after SIGTERM (snapshot)', value: median(term.map(x => growth(x.rss))), unit: 'B/item', target: { op: '<=', value: 50 }, runs: term.map(x => growth(x.rss)) },
      { section: S, metric: '  same, 1 s after a restart after kill -9 (replay)', value: median(kill.map(x => growth(x.rss))), unit: 'B/item', target: { op: '<=', value: 50 }, runs: kill.map(x => growth(x.rss)) },
      { section: S, metric: 'data dir size', value: disk / MB, unit: 'MB', runs: [disk / MB], note: `${(disk / N).toFixed(0)} B/item` },
      { section: S, metric: 'restart to full counts after SIGTERM (snapshot)', value: median(ms(term)), unit: 'ms', target: { op: '<', value: 10000 }, runs: ms(term) },
      { section: S, metric: 'restart to full counts after kill -9 (replay)', value: median(ms(kill)), unit: 'ms', target: { op: '<', value: 10000 }, runs: ms(kill) },
      { section: S, metric: '  spawn to ready line, SIGTERM', value: median(term.map(x => x.ready)), unit: 'ms', runs: term.map(x => x.ready) },
      { section: S, metric: '  spawn to ready line, kill -9', value: median(kill.map(x => x.ready)), unit: 'ms', runs: kill.map(x => x.ready) },
      { section: S, metric: `catch-up of 1% (${(N - M).toLocaleString('en-US')} items), join -> every tenant count matches`, value: catchUp, unit: 'ms', target: { op: '<', value: 5000 }, runs: [catchUp], note: caughtUpNote },
      { section: S, metric: '  anti-entropy entries sent (A + B)', value: ex.entriesSent, unit: 'entries', runs: [ex.entriesSent], note: `${(ex.entriesSent / (N - M)).toFixed(2)} per missing item` },
      { section: S, metric: '  entries received by B that grew its state', value: ex.entriesReceivedB, unit: 'entries', runs: [ex.entriesReceivedB], note: `items received ${ex.itemsReceivedB}, gossip deltas ${ex.gossipDeltasB}` },
      { section: S, metric: '  anti-entropy frame bytes (B in + out)', value: ex.syncBytes / MB, unit: 'MB', runs: [ex.syncBytes / MB], note: `${(ex.syncBytes / (N - M)).toFixed(1)} B per missing item` },
      { section: S, metric: '  TCP payload A<->B during the catch-up', value: ex.tcp / MB, unit: 'MB', runs: [ex.tcp / MB], note: ss ? `${(ex.tcp / (N - M)).toFixed(1)} B per missing item` : 'ss not available' },
      { section: S, metric: `  load rate of B (${M.toLocaleString('en-US')} items, before the join)`, value: M / (loadBMs / 1000), unit: 'item/s', runs: [M / (loadBMs / 1000)] }
    ]
    const wireNote = `item = ${ITEM_BYTES} B (16-byte id + 4-byte tenant)${lagging > 0 ? `; ${lagging} run(s) where the others lagged > 10 s` : ''}`
    rows.push(
      { section: S, metric: 'TCP payload per item / item size, 3 nodes, one written', value: median(wire.map(x => x.tcp)) / ITEM_BYTES, unit: '×', target: { op: '<=', value: 2 }, runs: wire.map(x => x.tcp / ITEM_BYTES), note: ss ? `${wireNote}; every item goes to 2 other nodes` : 'ss not available' },
      { section: S, metric: '  TCP payload bytes per item', value: median(wire.map(x => x.tcp)), unit: 'B/item', runs: wire.map(x => x.tcp) },
      { section: S, metric: 'libp2p stream bytes per item / item size', value: median(wire.map(x => x.libp2p)) / ITEM_BYTES, unit: '×', target: { op: '<=', value: 2 }, runs: wire.map(x => x.libp2p / ITEM_BYTES) },
      { section: S, metric: '  libp2p stream bytes per item', value: median(wire.map(x => x.libp2p)), unit: 'B/item', runs: wire.map(x => x.libp2p) },
      ...perProtoRows(S, wire, 'B/item'),
      { section: S, metric: '  achieved rate', value: median(wire.map(x => x.rate)), unit: 'item/s', runs: wire.map(x => x.rate) }
    )
    return {
      id: 10,
      title: `Items at scale: ${nice} items`,
      method: `${nice} distinct items (16-byte ids, 1,000 tenants t000-t999, ${per.toLocaleString('en-US')} each) loaded into one node with POST /items (JSON arrays of ${LOAD_PER.toLocaleString('en-US')}, ${LOAD_PARALLEL} in flight, every item checked as added)` +
        `${ctx.quick ? ' — QUICK MODE: 1,000,000 items instead of 10,000,000 (the targets are for 10M)' : ''}. ` +
        'RSS = VmRSS from /proc/<pid>/status of the node: empty (2 s after start), 2 s after the load, 1 s after each restart; growth per item is over the empty figure. ' +
        `Restart: kill -9 (the next start replays the entries) then SIGTERM (the next start loads the snapshot), per run${ctx.quick ? '' : ' (at most 3 runs)'}; timed from spawn until GET /items/<tenant>/count of t000 and t999 both answer the full count (polled every 10 ms), then every tenant checked via GET /tenants. ` +
        `Catch-up: a second node B, started with no peers, gets the first 99 % of the same items (${M.toLocaleString('en-US')}; A holds all ${nice}, checked with countd_items on both); then POST /config on B names A; timed from that request until GET /tenants on B (polled every 25 ms) shows all ${per.toLocaleString('en-US')} in every tenant, then GET /items/<tenant>/count checked for every tenant. ` +
        'A was restarted after its load, so gossip has nothing to replay: the 1 % travels by anti-entropy. Exchange figures are deltas of countd_sync_* over the catch-up (A and B) and bytes_sent of `ss -tin` on the two p2p ports. ' +
        `Wire: 3 fresh nodes; the bench sends ${WIRE_RATE} new items/s (${WIRE_PER} per request, ids of 16 bytes, tenants of 4, round robin) to one node for ${wireSec} s per run, waits until the other two hold as many items, and divides the bytes sent by all three nodes (TCP payload from ss, libp2p stream bytes from /metrics, as section 4, idle traffic included) by the items added (countd_items_added_total) and by the item's ${ITEM_BYTES} bytes.`,
      rows,
      raw: { N, loadMs, loadBMs, rssEmpty, rssLoaded, disk, restartKill: kill, restartTerm: term, catchUp, exchange: ex, wire }
    }
  } finally {
    if (c !== undefined) await stopCluster(c)
    if (b !== undefined) await stopNode(b)
    await stopNode(a)
    removeDir(dir)
  }
}
