// GET /metrics of a live node in a 2-node cluster: valid for promtool, and
// the counters move with real traffic.
import { strict as assert } from 'node:assert'
import { execFileSync, spawnSync } from 'node:child_process'
import { Cluster, inc, value, waitFor } from '../../scripts/cluster.js'

function metric (text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
  return m === null ? NaN : Number(m[1])
}

describe('Prometheus metrics', function () {
  this.timeout(60000)
  let cluster: Cluster

  before(async () => { cluster = await Cluster.start({ nodes: 2 }) })
  after(async () => { await cluster?.stop() })

  it('counts increments, gossip, sync and replication lag, and passes promtool check metrics', async function () {
    const [a, b] = cluster.nodes
    for (let i = 0; i < 20; i++) await inc(a.url, `m${i % 4}`, 1)
    await waitFor(async () => await value(b.url, 'm3') === 5n, 5000)
    // An anti-entropy round once the two agree: only the smaller id runs the
    // periodic one (every second), and rounds while gossip is still in flight
    // repair; wait for it rather than for a fixed time.
    const scrape = async (): Promise<[string, string]> => [await (await fetch(`${a.url}/metrics`)).text(), await (await fetch(`${b.url}/metrics`)).text()]
    let [textA, textB] = await scrape()
    await waitFor(async () => {
      [textA, textB] = await scrape()
      return /^countd_sync_rounds_total\{role="initiator",outcome="equal"\} \d+/m.test(textA + textB)
    }, 10000, 100)
    assert.equal(metric(textA, 'countd_increments_total'), 20)
    assert.ok(metric(textA, 'countd_gossip_deltas_published_total') >= 4)
    assert.ok(metric(textB, 'countd_gossip_deltas_received_total') >= 4)
    assert.ok(metric(textB, 'countd_replication_lag_seconds_count') >= 1)
    assert.ok(metric(textA, 'countd_commit_batch_size_count') >= 1)
    assert.equal(metric(textA, 'countd_connected_peers'), 1)
    assert.equal(metric(textA, 'countd_counters'), 4)
    assert.equal(metric(textA, 'countd_members'), 2)
    // Periodic sync of a pair is started by the smaller id: look at both.
    assert.match(textA + textB, /^countd_sync_rounds_total\{role="initiator",outcome="equal"\} \d+/m)
    assert.match(textA, /^countd_http_request_duration_seconds_bucket\{le="[^"]+",route="\/counter\/:name"\}/m)
    assert.match(textA, /^libp2p_/m, 'libp2p metrics included')
    if (spawnSync('promtool', ['--version']).error !== undefined) {
      // .ci/run installs Debian's prometheus package for promtool.
      this.skip()
    }
    for (const text of [textA, textB]) execFileSync('promtool', ['check', 'metrics'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] })
  })
})
