// Prometheus metrics (prom-client). One registry per process; the HTTP API
// serves it at GET /metrics. Hot paths only touch counters and histograms.
import { Registry, Counter, Gauge, Histogram } from 'prom-client'

export const registry = new Registry()

// A few process gauges. (prom-client's default set names gauges *_total,
// which `promtool check metrics` rejects.)
new Gauge({ name: 'countd_process_resident_memory_bytes', help: 'Resident set size', registers: [registry], collect () { this.set(process.memoryUsage.rss()) } })
new Gauge({ name: 'countd_process_heap_used_bytes', help: 'V8 heap in use', registers: [registry], collect () { this.set(process.memoryUsage().heapUsed) } })
new Counter({ name: 'countd_process_cpu_seconds_total', help: 'User + system CPU time', registers: [registry], collect () { const u = process.cpuUsage(); this.reset(); this.inc((u.user + u.system) / 1e6) } })

/**
 * `labels(...values)` of a metric with each child kept: prom-client's label
 * lookup costs about a microsecond, too much per request or Redis command.
 */
export function cachedLabels<C> (labels: (...values: string[]) => C): (...values: string[]) => C {
  const children = new Map<string, C>()
  return (...values) => {
    const key = values.join('\u0000')
    let child = children.get(key)
    if (child === undefined) children.set(key, child = labels(...values))
    return child
  }
}

/**
 * The registry in Prometheus text format, passing `promtool check metrics`:
 * gauges that libp2p names *_total lose the suffix (Prometheus reserves it
 * for counters), and libp2p's few millisecond-unit families are left out
 * (Prometheus wants base units; countd's own latencies are in seconds).
 */
export async function renderMetrics (): Promise<string> {
  const families = (await registry.metrics()).split(/\n(?=# HELP )/)
  return families
    .filter(f => !/^# HELP \S*_milliseconds\b/.test(f))
    .map(f => {
      const gauge = /^# TYPE (\S+)_total (?!counter)\S+$/m.exec(f)
      return gauge === null ? f : f.replaceAll(`${gauge[1]}_total`, gauge[1])
    })
    .join('\n')
}

export const metrics = {
  httpRequests: new Counter({ name: 'countd_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'] as const, registers: [registry] }),
  httpLatency: new Histogram({ name: 'countd_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['route'] as const, buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [registry] }),
  incrementsAccepted: new Counter({ name: 'countd_increments_total', help: 'Increments made durable on this node', registers: [registry] }),
  commitBatchSize: new Histogram({ name: 'countd_commit_batch_size', help: 'Writers (requests) sharing one group-commit (fsync) batch', buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], registers: [registry] }),
  fsyncSeconds: new Histogram({ name: 'countd_fsync_duration_seconds', help: 'Duration of synced LevelDB batch writes', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5], registers: [registry] }),
  deltasPublished: new Counter({ name: 'countd_gossip_deltas_published_total', help: 'Counter deltas published on gossip', registers: [registry] }),
  deltaMessagesPublished: new Counter({ name: 'countd_gossip_messages_published_total', help: 'Gossip messages published', registers: [registry] }),
  deltaBytesPublished: new Counter({ name: 'countd_gossip_bytes_published_total', help: 'Payload bytes of published gossip messages', registers: [registry] }),
  deltasReceived: new Counter({ name: 'countd_gossip_deltas_received_total', help: 'Counter deltas received from gossip', registers: [registry] }),
  deltaBytesReceived: new Counter({ name: 'countd_gossip_bytes_received_total', help: 'Payload bytes of received gossip messages', registers: [registry] }),
  replicationLag: new Histogram({ name: 'countd_replication_lag_seconds', help: 'Origin ack to merge here, for gossiped deltas', buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5], registers: [registry] }),
  syncRounds: new Counter({ name: 'countd_sync_rounds_total', help: 'Anti-entropy exchanges by role and outcome', labelNames: ['role', 'outcome'] as const, registers: [registry] }),
  syncEntriesSent: new Counter({ name: 'countd_sync_entries_sent_total', help: 'Entries sent by anti-entropy', registers: [registry] }),
  syncEntriesReceived: new Counter({ name: 'countd_sync_entries_received_total', help: 'Entries received by anti-entropy that grew local state', registers: [registry] }),
  syncBytes: new Counter({ name: 'countd_sync_bytes_total', help: 'Bytes of anti-entropy frames by direction', labelNames: ['direction'] as const, registers: [registry] }),
  peers: new Gauge({ name: 'countd_connected_peers', help: 'Connected libp2p peers', registers: [registry] }),
  members: new Gauge({ name: 'countd_members', help: 'Known members (replica ids), including retired', registers: [registry] }),
  counters: new Gauge({ name: 'countd_counters', help: 'Distinct counter names held', registers: [registry] }),
  itemsAdded: new Counter({ name: 'countd_items_added_total', help: 'Items new to this replica added by clients here', registers: [registry] }),
  itemsReceived: new Counter({ name: 'countd_items_received_total', help: 'Items new to this replica received from peers', registers: [registry] }),
  tenants: new Gauge({ name: 'countd_tenants', help: 'Tenants with at least one item', registers: [registry] }),
  items: new Gauge({ name: 'countd_items', help: 'Distinct (tenant, item) pairs held', registers: [registry] }),
  idsIssued: new Counter({ name: 'countd_ids_issued_total', help: 'IDs issued by this node', registers: [registry] }),
  idRefusals: new Counter({ name: 'countd_id_refusals_total', help: 'ID requests refused (clock too far back)', registers: [registry] }),
  idClockWaits: new Gauge({ name: 'countd_id_clock_waits', help: 'Times ID issuing waited for the clock (since start)', registers: [registry] }),
  idSlot: new Gauge({ name: 'countd_id_slot', help: 'Node slot of this node in IDs (-1: none yet)', registers: [registry] }),
  itemIndexBytes: new Gauge({ name: 'countd_item_index_bytes', help: 'Memory of the exact in-memory item index', registers: [registry] }),
  protocolCommands: new Counter({ name: 'countd_protocol_commands_total', help: 'Redis-protocol and gRPC commands by protocol, command and outcome (ok or an error code)', labelNames: ['protocol', 'command', 'outcome'] as const, registers: [registry] }),
  protocolLatency: new Histogram({ name: 'countd_protocol_command_duration_seconds', help: 'Redis-protocol and gRPC command latency (receipt to reply ready) by protocol', labelNames: ['protocol'] as const, buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [registry] })
}

// No node slot until the ID agent has a confirmed one.
metrics.idSlot.set(-1)
