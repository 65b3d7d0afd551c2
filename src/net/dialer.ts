// Keeping the mesh connected: seed addresses (--peers, POST /config) and
// members' last known addresses are redialed with backoff until connected.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Replica } from '../replica.js'
import type { CountdLibp2p } from './node.js'
import { parsePeerAddr } from '../addr.js'

interface Backoff { nextAt: number, delayMs: number }
const MIN_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 2000
export const REDIAL_TICK_MS = 500
const DIAL_TIMEOUT_MS = 3000

export class Dialer {
  private readonly seeds: Multiaddr[]
  private readonly backoff = new Map<string, Backoff>()
  private readonly dialing = new Set<string>()
  stopped = false

  constructor (
    private readonly node: CountdLibp2p,
    private readonly replica: Replica,
    seeds: string[],
    private readonly log: Logger
  ) {
    this.seeds = seeds.map(parsePeerAddr)
  }

  connected (id: string): void { this.backoff.delete(id) }

  /**
   * What to dial for member `id`: the addresses it announced (hello, member
   * lists) as /p2p/ multiaddrs, else its peer id. libp2p's peer store can
   * lose a peer's addresses when the connection to it dies: after a
   * SIGSTOP, both sides of a pair failed every dial with
   * NoValidAddressesError for as long as the chaos run went on (issue 15),
   * so dials never depend on the peer store alone.
   */
  target (id: string): PeerId | Multiaddr[] {
    const peer = peerIdFromString(id)
    const addrs: Multiaddr[] = []
    for (const a of this.replica.members.get(id)?.addrs ?? []) {
      try {
        addrs.push(multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${id}`))
      } catch {}
    }
    return addrs.length > 0 ? addrs : peer
  }

  /**
   * Dial each address now (POST /config, SIGHUP); returns per-address
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

  /** Reconnect to members and seeds we are not connected to, with backoff. */
  tick (): void {
    if (this.stopped) return
    const now = Date.now()
    const connected = new Set(this.node.getPeers().map(p => p.toString()))
    for (const m of this.replica.members.active()) {
      if (connected.has(m.id) || m.addrs.length === 0) continue
      void this.dialWithBackoff(m.id, now, async signal => { await this.node.dial(this.target(m.id), { signal }) })
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
      await dial(AbortSignal.timeout(DIAL_TIMEOUT_MS))
      this.backoff.delete(key)
    } catch (err: any) {
      const delayMs = Math.min(MAX_BACKOFF_MS, (b?.delayMs ?? MIN_BACKOFF_MS / 2) * 2)
      this.backoff.set(key, { nextAt: Date.now() + delayMs, delayMs })
      this.log.debug({ target: key, err: err.message, retryInMs: delayMs }, 'dial failed')
    } finally {
      this.dialing.delete(key)
    }
  }
}
