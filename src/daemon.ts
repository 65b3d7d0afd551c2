// Wires store, replica, network and HTTP API; owns start and stop.
import type { Server } from 'node:http'
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { isLoopbackHost, reloadConfig, type Config } from './config.js'
import { Store } from './store/store.js'
import { Replica, placementOf } from './replica.js'
import { ReplicaService } from './service.js'
import { IdAgent } from './ids/agent.js'
import { startRespServer, type RunningServer } from './api/resp/server.js'
import { startGrpcServer } from './api/grpc/server.js'
import { systemClock } from './ids/clock.js'
import { Network } from './net/network.js'
import { parsePeerAddr } from './addr.js'
import { createApi, type ApiSettings } from './api/server.js'
import { SortedNames } from './sorted-names.js'
import type { ClusterView } from './api/cluster-view.js'
import { metrics } from './metrics.js'
import { StartupError } from './errors.js'
import { collectGarbage } from './util/gc.js'


const STOP_DEADLINE_MS = 4500
/** How long start-up waits for the first sync before logging ready anyway. */
const READY_JOIN_WAIT_MS = 3000
/** Expired Idempotency-Key records are deleted this often. */
const IDEMPOTENCY_SWEEP_MS = 10 * 60 * 1000
/** A node with no entry written for this long saves a snapshot (see snapshotWhenQuiet)... */
const QUIET_SNAPSHOT_MS = 500
/** ...at most this often: at 1,000,000 names one blocks the event loop ~0.3 s and writes ~35 MB. */
const QUIET_SNAPSHOT_EVERY_MS = 30_000

export class Daemon {
  private stopping: Promise<void> | undefined
  private readonly timers: NodeJS.Timeout[] = []
  /** Store.entryWrites when the valid snapshot was taken (-1: none valid). */
  private snapshotAt = -1
  private lastSnapshotMs = -Infinity
  private snapshotting = false

  private constructor (
    readonly replica: Replica,
    private readonly store: Store,
    private readonly network: Network,
    private readonly server: Server,
    private readonly ids: IdAgent,
    private readonly listeners: RunningServer[],
    private readonly log: Logger
  ) {}

  static async start (cfg: Config, log: Logger): Promise<Daemon> {
    const store = await Store.open(cfg.dataDir, placementOf())
    if (store.migrated !== undefined) log.info({ entries: store.migrated.entries, ms: Math.round(store.migrated.ms) }, 'data dir moved to the current store layout')
    let network: Network | undefined
    try {
      const key = await loadIdentity(store)
      const replica = new Replica(peerIdFromPrivateKey(key).toString(), store)
      replica.idempotencyWindowMs = cfg.idempotencyWindowSec * 1000
      const loadStarted = performance.now()
      const loadedFrom = await replica.load()
      const names = listingIndexes(replica)
      log.info({ from: loadedFrom, ms: Math.round(performance.now() - loadStarted), entries: replica.entryCount }, 'replica loaded')
      collectGarbage() // the snapshot file just read (16 bytes an item) goes now, not at V8's next collection
      replica.gate.clusterExpected = cfg.peers.length > 0
      store.onBatch = (size, ms) => {
        metrics.commitBatchSize.observe(size)
        metrics.fsyncSeconds.observe(ms / 1000)
      }
      network = new Network(replica, key, {
        listen: cfg.listen,
        peers: cfg.peers,
        gossipBatchMs: cfg.gossipBatchMs,
        syncIntervalMs: cfg.syncIntervalMs,
        swarmKey: cfg.swarmKeyFile !== undefined ? readSwarmKey(cfg.swarmKeyFile) : undefined
      }, log)
      // Who listens to what: own durable writes are gossiped. (New members
      // need no hook: the dialer's tick dials every active member at the
      // addresses in its member record.)
      replica.localDelta.add(entries => { network?.publish(entries) })
      store.health.onChange = failure => {
        if (failure !== undefined) log.error({ err: failure.message }, 'writes are failing: answering them 507/503 and serving reads until the disk recovers')
        else log.info('writes work again')
      }
      const ids = new IdAgent(replica, { pinnedSlot: cfg.nodeSlot, clock: systemClock(), log })
      const service = new ReplicaService(replica, network, ids)
      const apiSettings: ApiSettings = { apiToken: cfg.apiToken, consistentTimeoutSec: cfg.consistentTimeoutSec }
      const server = createApi({
        service,
        replica,
        cluster: clusterView(network),
        ...names,
        http: `${cfg.httpHost}:${cfg.httpPort}`,
        startedAt: Date.now(),
        settings: apiSettings
      })
      // HTTP first: a busy port fails fast, before we join the mesh.
      await listen(server, cfg.httpHost, cfg.httpPort)
      try {
        await network.start()
      } catch (err: any) {
        server.close()
        throw err.code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(String(err.message))
          ? new StartupError(`p2p listen address in use: ${cfg.listen.join(', ')}`)
          : err
      }
      if (cfg.apiToken === undefined && !isLoopbackHost(cfg.httpHost)) {
        log.warn({ http: `${cfg.httpHost}:${cfg.httpPort}` }, 'HTTP API is reachable beyond this machine without --api-token: anyone who reaches it can write')
      }
      reloadOnSighup(cfg, log, { settings: apiSettings, replica, network })
      // Give the first sync a moment, so a node that is ready also accepts writes.
      if (!await replica.gate.whenWritable(READY_JOIN_WAIT_MS)) log.warn({ peers: cfg.peers }, 'not joined to any member yet: increments wait for the first sync')
      await ids.start()
      // The Redis-protocol and gRPC front ends: the same service, the same live token.
      const token = (): string | undefined => apiSettings.apiToken
      const consistentTimeoutMs = cfg.consistentTimeoutSec * 1000
      const listeners: RunningServer[] = []
      try {
        if (cfg.resp !== undefined) listeners.push(await startRespServer(service, { ...cfg.resp, token, log, consistentTimeoutMs }))
        if (cfg.grpc !== undefined) listeners.push(await startGrpcServer(service, { ...cfg.grpc, token, log, consistentTimeoutMs }))
      } catch (err: any) {
        for (const l of listeners) await l.close().catch(() => {})
        server.close()
        const where = cfg.resp !== undefined && listeners.length === 0 ? `Redis address ${cfg.resp.host}:${cfg.resp.port}` : `gRPC address ${cfg.grpc?.host ?? ''}:${cfg.grpc?.port ?? ''}`
        throw /EADDRINUSE|address already in use/i.test(`${String(err.code)} ${String(err.message)}`) ? new StartupError(`${where} is already in use`) : new StartupError(`cannot listen on ${where}: ${String(err.message)}`)
      }
      const daemon = new Daemon(replica, store, network, server, ids, listeners, log)
      // Loaded from a snapshot: it stays valid until the next entry write.
      if (loadedFrom === 'snapshot') daemon.snapshotAt = store.entryWrites
      daemon.timers.push(setInterval(() => {
        store.sweepIdempotency(Date.now()).catch(err => { log.warn({ err: err.message }, 'idempotency sweep failed') })
      }, IDEMPOTENCY_SWEEP_MS).unref())
      daemon.timers.push(setInterval(() => { store.checkpointWhenQuiet(QUIET_SNAPSHOT_MS) }, QUIET_SNAPSHOT_MS / 2).unref())
      if (cfg.quietSnapshotEntries > 0) {
        daemon.timers.push(setInterval(() => { daemon.snapshotWhenQuiet(cfg.quietSnapshotEntries) }, QUIET_SNAPSHOT_MS / 2).unref())
      }
      log.info({
        peerId: replica.id,
        http: `http://${cfg.httpHost}:${cfg.httpPort}`,
        listen: network.listenAddrs(),
        ...(cfg.resp !== undefined ? { resp: `${cfg.resp.host}:${cfg.resp.port}` } : {}),
        ...(cfg.grpc !== undefined ? { grpc: `${cfg.grpc.host}:${cfg.grpc.port}` } : {}),
        counters: replica.counters.keys,
        members: replica.members.size
      }, 'ready')
      return daemon
    } catch (err) {
      await network?.stop().catch(() => {})
      await store.close().catch(() => {})
      throw err
    }
  }

  /**
   * A start after kill -9 replays every entry (~4.5 µs each: 5 s at
   * 1,000,000 names); from a snapshot it takes what a clean stop's does. So a
   * node with `minEntries` or more that has written no entry for
   * QUIET_SNAPSHOT_MS saves one (the store drops it again at the next entry
   * write). A node that never pauses never gets one and replays.
   */
  private snapshotWhenQuiet (minEntries: number): void {
    const at = this.store.entryWrites
    if (this.snapshotting || this.stopping !== undefined || at === this.snapshotAt || this.replica.entryCount < minEntries) return
    const now = performance.now()
    if (now - this.store.lastEntryWriteAt < QUIET_SNAPSHOT_MS || now - this.lastSnapshotMs < QUIET_SNAPSHOT_EVERY_MS || !this.store.idle) return
    // Nor while anti-entropy runs: a peer catching up from us would share the
    // cores with the snapshot (10M items: ~1.5 s of CPU), and a node that
    // catches up pauses its writes between exchanges.
    if (this.network.exchanging) return
    this.snapshotting = true
    this.lastSnapshotMs = now
    // No closure below may capture the snapshot's chunks: closures of one
    // scope share a context, so the GC in `finally` found them still
    // reachable and 160 MB (10M items) stayed until V8's next collection.
    const bytes = this.replica.snapshot()
    const size = bytes.reduce((n, c) => n + c.byteLength, 0)
    this.store.saveQuietSnapshot(bytes, at).then(saved => {
      if (saved) this.snapshotAt = at
      this.log.debug({ saved, ms: Math.round(performance.now() - now), bytes: size }, 'quiet snapshot')
    }, err => {
      this.log.warn({ err: err.message }, 'could not write a snapshot')
    }).finally(() => {
      this.snapshotting = false
      // What the write burst before this quiet spell left (request bodies,
      // journal frames) and the snapshot's chunks; on the next turn, once
      // this chain has let go of them.
      setImmediate(collectGarbage)
    })
  }

  /** Stop accepting, flush, close LevelDB. Idempotent. */
  async stop (): Promise<void> {
    this.stopping ??= this.doStop()
    return await this.stopping
  }

  private async doStop (): Promise<void> {
    this.log.info('stopping')
    for (const t of this.timers) clearInterval(t)
    this.ids.stop()
    const closed = new Promise<void>(resolve => this.server.close(() => { resolve() }))
    this.server.closeIdleConnections()
    // Requests in flight finish (their increments are already queued for commit).
    await Promise.race([closed, sleep(1500)])
    this.server.closeAllConnections()
    await Promise.race([Promise.all(this.listeners.map(async l => await l.close())), sleep(1000)]).catch(() => {})
    await Promise.race([this.network.stop(), sleep(1500)]).catch(() => {})
    // A snapshot of the in-memory state makes the next start fast; without
    // one (a crash, a failing disk) the next start replays every entry.
    try {
      const started = performance.now()
      await this.store.saveSnapshot(() => this.replica.snapshot())
      this.log.info({ ms: Math.round(performance.now() - started) }, 'snapshot written')
    } catch (err: any) {
      this.log.warn({ err: err.message }, 'could not write the snapshot; the next start rebuilds from the entries')
    }
    await this.store.close()
    this.log.info('stopped')
  }

}

/** Run until SIGINT/SIGTERM; exit 0 once stopped (forced after STOP_DEADLINE_MS). */
export function stopOnSignals (daemon: Daemon): void {
  const onSignal = (): void => {
    setTimeout(() => process.exit(0), STOP_DEADLINE_MS).unref()
    daemon.stop().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
}

const SWARM_KEY_RE = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-fA-F]{64}\s*$/

/** Read and check a swarm key file (the go-ipfs format `countd keygen` writes). */
function readSwarmKey (file: string): Uint8Array {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err: any) {
    throw new StartupError(`cannot read swarm key ${file}: ${err.code ?? err.message}`)
  }
  if (!SWARM_KEY_RE.test(text)) throw new StartupError(`${file} is not a swarm key (make one with: countd keygen --out ${file})`)
  return new TextEncoder().encode(text)
}

async function loadIdentity (store: Store): Promise<PrivateKey> {
  const saved = await store.identity()
  if (saved !== undefined) return privateKeyFromProtobuf(saved)
  const key = await generateKeyPair('Ed25519')
  await store.saveIdentity(privateKeyToProtobuf(key))
  return key
}

async function listen (server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new StartupError(`HTTP address ${host}:${port} is already in use`))
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new StartupError(`cannot bind HTTP to ${host}:${port}: no such local address`))
      else if (err.code === 'EACCES') reject(new StartupError(`no permission to bind HTTP to ${host}:${port}`))
      else reject(err)
    })
    server.listen(port, host, () => { resolve() })
  })
}

function clusterView (network: Network): ClusterView {
  return {
    listenAddrs: () => network.listenAddrs(),
    peers: () => network.peers(),
    isConnected: id => network.isConnected(id),
    checkAddrs: actors => { for (const a of actors) parsePeerAddr(a) },
    connect: async actors => await network.connect(actors.map(parsePeerAddr)),
  }
}

/**
 * SIGHUP re-reads --config (SPEC §5; without one it is logged and ignored): log level, API token, consistent
 * timeout, idempotency window and new peers apply at once; a changed key
 * that needs a restart is logged and left; a bad file is logged and ignored.
 */
function reloadOnSighup (started: Config, log: Logger, live: { settings: ApiSettings, replica: Replica, network: Network }): void {
  let current = started
  process.on('SIGHUP', () => {
    const file = current.sources?.file
    // Without a file there is nothing to re-read; a reload must not stop the node.
    if (file === undefined) {
      log.info('SIGHUP: no --config file to re-read')
      return
    }
    let reloaded: ReturnType<typeof reloadConfig>
    try {
      reloaded = reloadConfig(file, current)
    } catch (err: any) {
      log.error({ file, err: err.message }, 'config not reloaded (bad file): the running config stays')
      return
    }
    const { config, needsRestart } = reloaded
    log.level = config.logLevel
    live.settings.apiToken = config.apiToken
    live.settings.consistentTimeoutSec = config.consistentTimeoutSec
    live.replica.idempotencyWindowMs = config.idempotencyWindowSec * 1000
    const newPeers = config.peers.filter(p => !current.peers.includes(p))
    if (newPeers.length > 0) {
      live.replica.gate.clusterExpected = true
      live.network.connect(newPeers.map(parsePeerAddr)).catch((err: Error) => { log.warn({ peers: newPeers, err: err.message }, 'could not dial new peers') })
    }
    if (needsRestart.length > 0) log.warn({ file, keys: needsRestart }, 'config changed in keys that take effect only at restart: left as they are')
    log.info({ file, logLevel: config.logLevel, apiToken: config.apiToken !== undefined, peersAdded: newPeers }, 'config reloaded')
    current = config
  })
}

/**
 * Sorted indexes of counter names and tenants for the paged lists (GET
 * /counters, GET /tenants). Built after load() (which may swap in the
 * datasets of a snapshot) from the loaded keys, sorted once, then fed by
 * the datasets' first sight of each new key.
 */
function listingIndexes (replica: Replica): { counterNames: SortedNames, tenantNames: SortedNames } {
  const counterNames = new SortedNames()
  const tenantNames = new SortedNames()
  // Not flushed here: the first page sorts them (one sort; ~1 s at 1,000,000
  // names, which a restart no longer waits for before it is ready).
  for (const name of replica.counters.names()) counterNames.add(name)
  for (const tenant of replica.items.counts.keys()) tenantNames.add(tenant)
  replica.counters.onNewKey = name => { counterNames.add(name) }
  replica.items.onNewKey = tenant => { tenantNames.add(tenant) }
  return { counterNames, tenantNames }
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms).unref())
}
