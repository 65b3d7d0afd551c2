// The network side of a replica: the libp2p node, delta gossip, anti-entropy
// scheduling, consistent reads and the dialer. The daemon creates one and
// attaches it to the replica's events; nothing else imports it.
import type { Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Replica, Member, Entry } from '../replica.js'
import { createNode, type CountdLibp2p } from './node.js'
import { DeltaGossip } from './gossip.js'
import { SYNC_STEP_TIMEOUT_MS, runSync, serveSync, type SyncHost, type SyncProgress } from './sync.js'
import { requestState, serveState, readEveryMember } from './read.js'
import { SYNC_PROTOCOL, READ_PROTOCOL, OLD_PROTOCOLS } from './wire.js'
import { Dialer, REDIAL_TICK_MS } from './dialer.js'
import { withoutPeerId } from '../addr.js'
import { metrics } from '../metrics.js'

export interface NetworkOptions {
  listen: string[]
  /** Bootstrap addresses (host:port or multiaddrs, with or without /p2p/). */
  peers: string[]
  gossipBatchMs: number
  syncIntervalMs: number
  /** Private-network key (pnet): only peers holding it can connect. */
  swarmKey?: Uint8Array
  /** Register libp2p's own metrics (default true; one node per process may). */
  libp2pMetrics?: boolean
  /** Entries one anti-entropy exchange swaps at most (default SYNC_ENTRY_BUDGET; tests set it small). */
  syncEntryBudget?: number
}

const MEMBERS_RESEND_MS = 30000
/** Of a pair, the node with the larger id starts an exchange only when none completed for a period plus this. */
const OVERDUE_MARGIN_MS = 1500

export class Network {
  private node!: CountdLibp2p
  private gossip!: DeltaGossip
  private dialer!: Dialer
  private readonly syncing = new Set<string>()
  private timers: NodeJS.Timeout[] = []
  /** Per peer: the member list it has from us (as a fingerprint) and when it got it. */
  private readonly membersSent = new Map<string, { fingerprint: string, at: number }>()
  /** Per peer: the member list put in the exchange under way. */
  private readonly membersOffered = new Map<string, { fingerprint: string, at: number }>()
  /** Per peer: when an anti-entropy exchange with it last completed. */
  private readonly lastSynced = new Map<string, number>()
  /** Exchanges each peer is running with us right now (we serve them). */
  private readonly serving = new Map<string, number>()
  private readonly syncHost: SyncHost
  private readonly warnedOldPeers = new Set<string>()
  private stopped = false

  constructor (
    private readonly replica: Replica,
    private readonly privateKey: PrivateKey,
    private readonly opts: NetworkOptions,
    private readonly log: Logger
  ) {
    this.syncHost = {
      replica,
      addrs: () => this.listenAddrs(),
      membersFor: peer => this.membersFor(peer),
      onSynced: peer => {
        this.lastSynced.set(peer, Date.now())
        // Only a completed exchange proves the peer got our member list.
        const sent = this.membersOffered.get(peer)
        if (sent !== undefined) this.membersSent.set(peer, sent)
      }
    }
  }

  async start (): Promise<void> {
    this.node = await createNode(this.privateKey, this.opts.listen, this.opts.swarmKey, this.opts.libp2pMetrics)
    this.gossip = new DeltaGossip(this.node, this.replica, this.opts.gossipBatchMs, this.log)
    this.dialer = new Dialer(this.node, this.replica, this.opts.peers, this.log)
    await this.node.handle(SYNC_PROTOCOL, (stream, conn) => { void this.serve(stream, conn) }, { maxInboundStreams: 8 })
    await this.node.handle(READ_PROTOCOL, stream => { void serveState(this.replica, stream) }, { maxInboundStreams: 64 })
    // Nodes of an older wire version: refuse, and say so once per peer.
    await this.node.handle(OLD_PROTOCOLS, (stream, conn) => {
      const peer = conn.remotePeer.toString()
      if (!this.warnedOldPeers.has(peer)) {
        this.warnedOldPeers.add(peer)
        this.log.warn({ peer, protocol: stream.protocol }, 'peer speaks an older countd wire version; not talking to it (upgrade it)')
      }
      stream.abort(new Error('unsupported wire version'))
    })
    this.node.addEventListener('peer:connect', evt => { this.onConnect(evt.detail) })
    this.node.addEventListener('peer:disconnect', evt => {
      metrics.peers.set(this.node.getPeers().length)
      this.membersSent.delete(evt.detail.toString())
      this.membersOffered.delete(evt.detail.toString())
    })
    this.node.addEventListener('peer:identify', evt => {
      const addrs = evt.detail.listenAddrs.map(a => withoutPeerId(a.toString()))
      this.replica.members.note(evt.detail.peerId.toString(), addrs, Date.now())
    })
    this.gossip.start()
    this.timers.push(setInterval(() => { this.dialer.tick() }, REDIAL_TICK_MS))
    this.timers.push(setInterval(() => { this.syncAll() }, this.opts.syncIntervalMs))
    this.dialer.tick()
  }

  /** Own durable entries: gossip them (the daemon attaches this to the replica). */
  publish (entries: Entry[]): void { this.gossip?.enqueue(entries) }

  /** Own dialable addresses (no /p2p suffix). */
  listenAddrs (): string[] {
    return this.node.getMultiaddrs().map(a => withoutPeerId(a.toString()))
  }

  /** Connected peer ids. */
  peers (): string[] { return this.node.getPeers().map(p => p.toString()) }

  /** Whether an anti-entropy exchange runs now, in either role (a repair may be under way). */
  get exchanging (): boolean { return this.syncing.size > 0 || this.serving.size > 0 }

  isConnected (id: string): boolean {
    return this.node.getConnections().some(c => c.remotePeer.toString() === id && c.status === 'open')
  }

  async connect (addrs: Multiaddr[]): Promise<string[]> { return await this.dialer.connect(addrs) }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.dialer !== undefined) this.dialer.stopped = true
    for (const t of this.timers) clearInterval(t)
    this.gossip?.flush()
    await this.node?.stop()
  }

  // ---- consistent reads ----

  /**
   * Fetch and merge one key of a dataset from every active member within
   * `timeoutMs`; returns the members that could not be read (empty =
   * consistent: the local state includes every write any member
   * acknowledged before the call).
   */
  async consistentRead (tag: string, key: string, timeoutMs: number): Promise<string[]> {
    return await readEveryMember(this.replica, async (id, signal, fresh) => {
      const stream = await this.node.dialProtocol(this.dialer.target(id), READ_PROTOCOL, { signal, force: fresh })
      const { entries, members } = await requestState(this.replica, stream, tag, key, signal)
      await this.replica.mergeRemote(entries)
      for (const m of members) this.replica.members.merge(m)
      this.replica.members.note(id, undefined, Date.now())
    }, timeoutMs, this.log)
  }

  /**
   * Like consistentRead, for data spread over the whole digest tree (a
   * tenant's items): one complete anti-entropy exchange with every active
   * member, each started after this call.
   */
  async consistentSync (timeoutMs: number): Promise<string[]> {
    return await readEveryMember(this.replica, async (id, signal, fresh) => {
      const peer = peerIdFromString(id)
      const exchange = async (force: boolean, previous?: SyncProgress): Promise<SyncProgress> => {
        const stream = await this.node.dialProtocol(this.dialer.target(id), SYNC_PROTOCOL, { signal, force })
        const aborted = (): void => { stream.abort(new Error('consistent read timed out')) }
        signal.addEventListener('abort', aborted, { once: true })
        try {
          return await runSync(this.syncHost, stream, peer, this.opts.syncEntryBudget, previous)
        } finally {
          signal.removeEventListener('abort', aborted)
        }
      }
      // A difference over the budget takes several exchanges, each started after this call.
      for (let p = await exchange(fresh); !p.complete;) p = await exchange(false, p)
    }, timeoutMs, this.log)
  }

  // ---- anti-entropy scheduling ----

  private onConnect (peer: PeerId): void {
    metrics.peers.set(this.node.getPeers().length)
    const id = peer.toString()
    this.dialer.connected(id)
    this.replica.members.note(id, undefined, Date.now())
    // One exchange repairs both sides: the smaller id starts it at once. The
    // other side waits, as in syncAll, and starts its own only if none
    // completes in time (two concurrent exchanges of a big difference read
    // and sent it twice: a 1 % catch-up of 1M names, ~1.7 s a read).
    if (this.replica.id < id) void this.syncWith(peer)
    else this.lastSynced.set(id, Date.now())
  }

  /**
   * Periodic anti-entropy. One exchange repairs both sides, so of each pair
   * only the node with the smaller id starts it, unless none completed for
   * a while (the other side may be unable to); neither starts one while the
   * peer runs one with it.
   */
  private syncAll (): void {
    if (this.stopped) return
    const overdue = Date.now() - this.opts.syncIntervalMs - OVERDUE_MARGIN_MS
    for (const peer of this.node.getPeers()) {
      const id = peer.toString()
      // Not while the peer runs an exchange with us: one exchange of a big
      // repair can outlast the overdue time (10M items, 1 % missing: 2-5 s
      // each), and a second chain the other way read and sent it all twice.
      const busy = (this.serving.get(id) ?? 0) > 0
      if (!busy && (this.replica.id < id || (this.lastSynced.get(id) ?? 0) < overdue)) void this.syncWith(peer)
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

  private async serve (stream: Stream, conn: Connection): Promise<void> {
    const id = conn.remotePeer.toString()
    this.serving.set(id, (this.serving.get(id) ?? 0) + 1)
    try {
      await serveSync(this.syncHost, stream, conn)
    } finally {
      const n = (this.serving.get(id) ?? 1) - 1
      if (n > 0) this.serving.set(id, n)
      else this.serving.delete(id)
    }
  }

  private async syncWith (peer: PeerId): Promise<void> {
    const id = peer.toString()
    if (this.syncing.has(id) || this.stopped) return
    this.syncing.add(id)
    try {
      // An exchange over the entry budget repaired part of the difference: go on at once.
      for (let p: SyncProgress = { complete: false }; !p.complete && !this.stopped;) {
        const stream = await this.node.dialProtocol(this.dialer.target(id), SYNC_PROTOCOL, { signal: AbortSignal.timeout(SYNC_STEP_TIMEOUT_MS) })
        p = await runSync(this.syncHost, stream, peer, this.opts.syncEntryBudget, p)
      }
    } catch (err: any) {
      this.log.debug({ peer: id, err: err.message }, 'sync failed')
    } finally {
      this.syncing.delete(id)
    }
  }
}
