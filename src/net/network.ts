// The network side of a replica: libp2p node, delta gossip, anti-entropy,
// consistent reads and membership (learning, persisting and redialing
// members). The daemon creates one and hands the API a narrow view of it.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Replica, Member } from '../replica.js'
import { createNode, type CountdLibp2p } from './node.js'
import { DeltaGossip } from './gossip.js'
import { SYNC_PROTOCOL, SYNC_STEP_TIMEOUT_MS, runSync, serveSync, type SyncHost } from './sync.js'
import { READ_PROTOCOL, requestState, serveState } from './read.js'
import { parsePeerAddr, withoutPeerId } from '../addr.js'
import { metrics } from '../metrics.js'

export interface NetworkOptions {
  listen: string[]
  /** Bootstrap addresses (host:port or multiaddrs, with or without /p2p/). */
  peers: string[]
  gossipBatchMs: number
  syncIntervalMs: number
  /** Private-network key (pnet): only peers holding it can connect. */
  swarmKey?: Uint8Array
}

export interface ConsistentResult {
  value: bigint
  /** Member ids that could not be read in time (empty = consistent). */
  unreachable: string[]
}

interface Backoff { nextAt: number, delayMs: number }
const MIN_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 2000
const MEMBERS_RESEND_MS = 30000

export class Network {
  private node!: CountdLibp2p
  private gossip!: DeltaGossip
  private readonly seeds: Multiaddr[]
  private readonly backoff = new Map<string, Backoff>()
  private readonly syncing = new Set<string>()
  private readonly dialing = new Set<string>()
  private timers: NodeJS.Timeout[] = []
  /** Per peer: the member list it has from us (as a fingerprint) and when it got it. */
  private readonly membersSent = new Map<string, { fingerprint: string, at: number }>()
  /** Per peer: the member list put in the exchange under way. */
  private readonly membersOffered = new Map<string, { fingerprint: string, at: number }>()
  /** Per peer: when an anti-entropy exchange with it last completed. */
  private readonly lastSynced = new Map<string, number>()
  private readonly syncHost: SyncHost
  private stopped = false

  constructor (
    private readonly replica: Replica,
    private readonly privateKey: PrivateKey,
    private readonly opts: NetworkOptions,
    private readonly log: Logger
  ) {
    this.seeds = opts.peers.map(parsePeerAddr)
    this.syncHost = {
      replica,
      addrs: () => this.listenAddrs(),
      onPeerHello: (peer, addrs) => { void this.rememberAddrs(peer, addrs) },
      membersFor: peer => this.membersFor(peer),
      onSynced: peer => {
        this.lastSynced.set(peer, Date.now())
        // Only a completed exchange proves the peer got our member list.
        const sent = this.membersOffered.get(peer)
        if (sent !== undefined) this.membersSent.set(peer, sent)
        replica.markJoined()
      }
    }
  }

  get peerId (): string { return this.replica.id }

  async start (): Promise<void> {
    this.node = await createNode(this.privateKey, this.opts.listen, this.opts.swarmKey)
    this.gossip = new DeltaGossip(this.node, this.replica, this.opts.gossipBatchMs, this.log)
    await this.node.handle(SYNC_PROTOCOL, (stream, conn) => { void serveSync(this.syncHost, stream, conn) }, { maxInboundStreams: 8 })
    await this.node.handle(READ_PROTOCOL, stream => { void serveState(this.replica, stream) }, { maxInboundStreams: 64 })
    this.node.addEventListener('peer:connect', evt => { this.onConnect(evt.detail) })
    this.node.addEventListener('peer:disconnect', evt => {
      metrics.peers.set(this.node.getPeers().length)
      this.membersSent.delete(evt.detail.toString())
      this.membersOffered.delete(evt.detail.toString())
    })
    this.node.addEventListener('peer:identify', evt => {
      const addrs = evt.detail.listenAddrs.map(a => withoutPeerId(a.toString()))
      this.replica.noteMember(evt.detail.peerId.toString(), addrs, Date.now())
    })
    this.gossip.start()
    this.replica.events.onLocalDelta = entries => { this.gossip.enqueue(entries) }
    this.replica.events.onNewMember = m => { void this.rememberAddrs(m.id, m.addrs) }
    // Members known from a previous run: put their addresses where dial finds them.
    for (const m of this.replica.activeMembers()) await this.rememberAddrs(m.id, m.addrs)
    this.timers.push(setInterval(() => { this.redialTick() }, 500))
    this.timers.push(setInterval(() => { this.syncAll() }, this.opts.syncIntervalMs))
    this.redialTick()
  }

  /** Own dialable addresses (no /p2p suffix). */
  listenAddrs (): string[] {
    return this.node.getMultiaddrs().map(a => withoutPeerId(a.toString()))
  }

  /** Connected peer ids. */
  peers (): string[] { return this.node.getPeers().map(p => p.toString()) }

  isConnected (id: string): boolean {
    return this.node.getConnections().some(c => c.remotePeer.toString() === id && c.status === 'open')
  }

  /**
   * Dial each address now (POST /config, `--peers`); returns per-address
   * errors. Unreachable ones join the seeds and keep being retried.
   */
  async connect (addrs: Multiaddr[]): Promise<string[]> {
    const errors: string[] = []
    await Promise.all(addrs.map(async ma => {
      try {
        await this.node.dial(ma, { signal: AbortSignal.timeout(5000) })
      } catch (err: any) {
        if (await this.connectViaHttp(ma)) return
        errors.push(`${ma.toString()}: ${err.message}`)
        if (!this.seeds.some(s => s.equals(ma))) this.seeds.push(ma)
      }
    }))
    return errors
  }

  /**
   * Challenge-style configs often list the HTTP address of each actor
   * ("host:7777"). If `ma` is a countd HTTP API, dial the libp2p addresses
   * its /status reports instead.
   */
  private async connectViaHttp (ma: Multiaddr): Promise<boolean> {
    const m = /^\/(?:ip4|dns4|dns)\/([^/]+)\/tcp\/(\d+)$/.exec(ma.toString()) ?? /^\/ip6\/([^/]+)\/tcp\/(\d+)$/.exec(ma.toString())
    if (m === null) return false
    const host = ma.toString().startsWith('/ip6/') ? `[${m[1]}]` : m[1]
    try {
      const res = await fetch(`http://${host}:${m[2]}/status`, { signal: AbortSignal.timeout(2000) })
      const status = await res.json() as { id?: unknown, listen?: unknown }
      if (typeof status.id !== 'string' || !Array.isArray(status.listen)) return false
      const peer = peerIdFromString(status.id)
      await this.node.peerStore.merge(peer, { multiaddrs: status.listen.filter((a): a is string => typeof a === 'string').map(a => multiaddr(a)) })
      await this.node.dial(peer, { signal: AbortSignal.timeout(5000) })
      return true
    } catch {
      return false
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    this.gossip?.flush()
    await this.node?.stop()
  }

  // ---- consistent read ----

  /**
   * Fetch and merge `name` from every active member (discovering members as
   * the answers name them) within `timeoutMs`. The merged value includes
   * every increment any reachable member acknowledged before the call.
   */
  async consistentRead (name: string, timeoutMs: number): Promise<ConsistentResult> {
    const signal = AbortSignal.timeout(timeoutMs)
    const asked = new Set<string>()
    const failed = new Set<string>()
    const inFlight: Array<Promise<void>> = []
    const askNew = (): void => {
      for (const m of this.replica.activeMembers()) {
        if (asked.has(m.id)) continue
        asked.add(m.id)
        inFlight.push(this.readFrom(m.id, name, signal, timeoutMs).then(askNew, err => {
          this.log.debug({ member: m.id, err: err.message }, 'consistent read: member unreachable')
          failed.add(m.id)
        }))
      }
    }
    askNew()
    // New reads may be pushed while we wait: loop until all settled.
    for (let settled = 0; settled < inFlight.length;) {
      const batch = inFlight.slice(settled)
      await Promise.all(batch)
      settled += batch.length
    }
    return { value: this.replica.value(name), unreachable: [...failed] }
  }

  /**
   * Read `name` from member `id` before `signal` fires. The read goes over
   * the existing connection; if that has not answered after a third of the
   * timeout (0.5-1.5 s), a second read over a fresh connection races it.
   * (After a partition heals, an old TCP connection can sit in
   * retransmission backoff for seconds while a new one works at once.)
   */
  private async readFrom (id: string, name: string, signal: AbortSignal, timeoutMs: number): Promise<void> {
    const hedgeAfterMs = Math.round(Math.max(500, Math.min(1500, timeoutMs / 3)))
    const settled = new AbortController()
    const both = AbortSignal.any([signal, settled.signal])
    const hedge = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.readRetrying(id, name, both, true).then(resolve, reject) }, hedgeAfterMs)
      both.addEventListener('abort', () => { clearTimeout(timer); reject(both.reason) }, { once: true })
    })
    try {
      await Promise.any([this.readRetrying(id, name, both, false), hedge])
    } catch (err) {
      throw (err as AggregateError).errors?.[0] ?? err
    } finally {
      settled.abort()
    }
  }

  /** Retry transient failures (a connection being replaced) until `signal` fires. */
  private async readRetrying (id: string, name: string, signal: AbortSignal, freshConnection: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.readOnce(id, name, signal, freshConnection && attempt === 0)
        return
      } catch (err) {
        if (signal.aborted) throw err
        await new Promise(resolve => setTimeout(resolve, Math.min(500, 50 * 2 ** attempt)))
      }
    }
  }

  private async readOnce (id: string, name: string, signal: AbortSignal, force: boolean): Promise<void> {
    const stream = await this.node.dialProtocol(peerIdFromString(id), READ_PROTOCOL, { signal, force })
    const { entries, members } = await requestState(stream, name, signal)
    await this.replica.mergeRemote(entries)
    for (const m of members) this.replica.mergeMember(m)
    this.replica.noteMember(id, undefined, Date.now())
  }

  // ---- membership and anti-entropy ----

  private onConnect (peer: PeerId): void {
    metrics.peers.set(this.node.getPeers().length)
    const id = peer.toString()
    this.backoff.delete(id)
    this.replica.noteMember(id, undefined, Date.now())
    void this.syncWith(peer)
  }

  private async rememberAddrs (id: string, addrs: string[]): Promise<void> {
    if (id === this.replica.id || addrs.length === 0 || this.stopped) return
    try {
      const mas = addrs.map(a => multiaddr(a))
      await this.node.peerStore.merge(peerIdFromString(id), { multiaddrs: mas })
    } catch (err: any) {
      this.log.debug({ member: id, err: err.message }, 'ignoring bad member addresses')
    }
  }

  /** Reconnect to members and seeds we are not connected to, with backoff. */
  private redialTick (): void {
    if (this.stopped) return
    const now = Date.now()
    const connected = new Set(this.peers())
    for (const m of this.replica.activeMembers()) {
      if (connected.has(m.id) || m.addrs.length === 0) continue
      void this.dialWithBackoff(m.id, now, async signal => { await this.node.dial(peerIdFromString(m.id), { signal }) })
    }
    // Seeds have no peer id until dialed: dial each one that no connected
    // member listens on. (A seed whose node lost its data dir comes back
    // with a new id: dialing the address finds it again.)
    const covered = new Set<string>()
    for (const id of connected) for (const a of this.replica.members.get(id)?.addrs ?? []) covered.add(a)
    for (const ma of this.seeds) {
      const key = ma.toString()
      if (covered.has(key)) continue
      void this.dialWithBackoff(key, now, async signal => { await this.node.dial(ma, { signal }) })
    }
  }

  private async dialWithBackoff (key: string, now: number, dial: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const b = this.backoff.get(key)
    if ((b !== undefined && now < b.nextAt) || this.dialing.has(key)) return
    this.dialing.add(key)
    try {
      await dial(AbortSignal.timeout(3000))
      this.backoff.delete(key)
    } catch (err: any) {
      const delayMs = Math.min(MAX_BACKOFF_MS, (b?.delayMs ?? MIN_BACKOFF_MS / 2) * 2)
      this.backoff.set(key, { nextAt: Date.now() + delayMs, delayMs })
      this.log.debug({ target: key, err: err.message, retryInMs: delayMs }, 'dial failed')
    } finally {
      this.dialing.delete(key)
    }
  }

  /**
   * Periodic anti-entropy. One exchange repairs both sides, so of each pair
   * only the node with the smaller id starts it, unless none completed for
   * a while (the other side may be unable to).
   */
  private syncAll (): void {
    if (this.stopped) return
    const overdue = Date.now() - 2.5 * this.opts.syncIntervalMs
    for (const peer of this.node.getPeers()) {
      const id = peer.toString()
      if (this.replica.id < id || (this.lastSynced.get(id) ?? 0) < overdue) void this.syncWith(peer)
    }
  }

  /**
   * The member list to put in a sync hello for `peer`: sent until an
   * exchange carrying the current list completes, then again when it
   * changes, and every 30 s (for last-seen times).
   */
  private membersFor (peer: string): Member[] | undefined {
    const members = [...this.replica.members.values()]
    const fingerprint = members.map(m => `${m.id} ${m.addrs.join()} ${m.retiredAt ?? 0}`).sort().join('\n')
    const now = Date.now()
    const last = this.membersSent.get(peer)
    if (last !== undefined && last.fingerprint === fingerprint && now - last.at < MEMBERS_RESEND_MS) return undefined
    this.membersOffered.set(peer, { fingerprint, at: now })
    return members
  }

  private async syncWith (peer: PeerId): Promise<void> {
    const id = peer.toString()
    if (this.syncing.has(id) || this.stopped) return
    this.syncing.add(id)
    try {
      const stream = await this.node.dialProtocol(peer, SYNC_PROTOCOL, { signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
      await runSync(this.syncHost, stream, peer)
    } catch (err: any) {
      this.log.debug({ peer: id, err: err.message }, 'sync failed')
    } finally {
      this.syncing.delete(id)
    }
  }
}
