import { setFlagsFromString } from 'node:v8'
import { Command, Option } from 'commander'
import { loadConfig, DEFAULT_SYNC_INTERVAL_MS, DEFAULT_QUIET_SNAPSHOT_ENTRIES, type StartFlags } from '../config.js'
import { createLogger } from '../log.js'
import { exitWith } from './errors.js'

export function startCommand (): Command {
  return new Command('start')
    .description('run a countd node in the foreground')
    .addOption(new Option('--data-dir <dir>', 'where LevelDB and the node key live').env('COUNTD_DATA_DIR').default('./countd-data'))
    .addOption(new Option('--http <host:port>', 'HTTP API address').env('COUNTD_HTTP').default('127.0.0.1:7777'))
    .addOption(new Option('--listen <multiaddr...>', 'libp2p listen addresses (repeat or comma-separate)').env('COUNTD_LISTEN').default('/ip4/0.0.0.0/tcp/7778'))
    .addOption(new Option('--peers <addr...>', 'peers to join: host, host:port or multiaddrs (comma-separated)').env('COUNTD_PEERS'))
    .addOption(new Option('--log-level <level>', 'trace|debug|info|warn|error|fatal|silent').env('COUNTD_LOG_LEVEL').default('info'))
    .addOption(new Option('--consistent-timeout <sec>', 'default timeout of consistent reads').env('COUNTD_CONSISTENT_TIMEOUT').default('5'))
    .addOption(new Option('--gossip-batch-ms <ms>', 'batch own deltas this long before gossiping').env('COUNTD_GOSSIP_BATCH_MS').default('20'))
    .addOption(new Option('--sync-interval-ms <ms>', 'anti-entropy period with each peer').env('COUNTD_SYNC_INTERVAL_MS').default(String(DEFAULT_SYNC_INTERVAL_MS)))
    .addOption(new Option('--api-token <token>', 'require Authorization: Bearer <token> on the HTTP API (all but /health)').env('COUNTD_API_TOKEN'))
    .addOption(new Option('--resp <host:port>', 'Redis-protocol listener (off unless given)').env('COUNTD_RESP'))
    .addOption(new Option('--grpc <host:port>', 'gRPC listener (off unless given)').env('COUNTD_GRPC'))
    .addOption(new Option('--allow-unauthenticated', 'allow listeners beyond loopback without --api-token (env COUNTD_ALLOW_UNAUTHENTICATED=1)'))
    .addOption(new Option('--node-slot <n>', 'pin this node\'s ID slot (0-1023)').env('COUNTD_NODE_SLOT'))
    .addOption(new Option('--swarm-key <file>', 'private-network key from `countd keygen`; only nodes with it can connect').env('COUNTD_SWARM_KEY'))
    .addOption(new Option('--quiet-snapshot-entries <n>', 'with this many entries or more, save a snapshot when writes pause (fast restart after a crash); 0: only at a clean stop').env('COUNTD_QUIET_SNAPSHOT_ENTRIES').default(String(DEFAULT_QUIET_SNAPSHOT_ENTRIES)))
    .addOption(new Option('--idempotency-window <sec>', 'how long Idempotency-Key answers are kept (default 86400)').env('COUNTD_IDEMPOTENCY_WINDOW'))
    .addOption(new Option('--config <file>', 'YAML or JSON file of these flags by long name; flags and env win; SIGHUP re-reads it').env('COUNTD_CONFIG'))
    .action(async (flags: StartFlags & { config?: string }, cmd: Command) => {
      limitHeapGrowth()
      try {
        // Flags and environment win over the file; the file wins over defaults.
        const explicit: Record<string, unknown> = {}
        const defaults: Record<string, unknown> = {}
        for (const [key, value] of Object.entries(flags)) {
          if (key === 'config') continue
          const source = cmd.getOptionValueSource(key)
          if (source === 'cli' || source === 'env') explicit[key] = value
          else defaults[key] = value
        }
        // Read by value, not presence (commander would take "=0" as set): 1/true/yes allow.
        const allowEnv = process.env.COUNTD_ALLOW_UNAUTHENTICATED
        if (explicit.allowUnauthenticated === undefined && allowEnv !== undefined) explicit.allowUnauthenticated = allowEnv
        const cfg = loadConfig({ file: flags.config, explicit, defaults: defaults as unknown as StartFlags })
        const log = createLogger(cfg.logLevel)
        // Loaded here so client commands start without libp2p and LevelDB.
        const { Daemon, stopOnSignals } = await import('../daemon.js')
        const daemon = await Daemon.start(cfg, log)
        stopOnSignals(daemon)
      } catch (err) {
        exitWith(err)
      }
    })
}

/**
 * V8 grows a busy heap by up to 2x its live size before it collects, so a
 * daemon that holds 1,000,000 names while requests churn garbage ran at
 * 530-600 MB RSS with ~100 MB live. Growing by at most 50 % keeps it under
 * 360 MB (bench section 5), at no throughput cost measured (in-process
 * batch increments, A/B back to back); 20 % saved 30 MB more but cost 25 %.
 * Read by V8 at each collection, so setting it here at start works.
 */
function limitHeapGrowth (): void {
  // COUNTD_HEAP_GROWTH_PERCENT overrides it (0: V8's own heuristics), for a node that trades memory for speed.
  const env = process.env.COUNTD_HEAP_GROWTH_PERCENT
  const percent = env !== undefined && /^[0-9]{1,4}$/.test(env) ? Number(env) : 50
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`)
}
