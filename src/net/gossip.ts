// Delta dissemination over gossipsub. Own durable increments are collected
// for a few milliseconds and published as one message per batch carrying
// each touched counter's full own count (idempotent, order-insensitive).
import type { Message } from '@libp2p/gossipsub'
import type { Replica, StoredEntry } from '../replica.js'
import { encodeDelta, decodeDelta } from './codec.js'
import { metrics } from '../metrics.js'
import type { CountdLibp2p } from './node.js'
import type { Logger } from 'pino'

export const DELTA_TOPIC = '/countd/deltas/1'
/** Largest number of deltas in one gossip message (keeps messages well under 1 MiB). */
const MAX_DELTAS_PER_MESSAGE = 5000

export class DeltaGossip {
  private pending = new Map<string, bigint>()
  private timer: NodeJS.Timeout | undefined

  constructor (
    private readonly node: CountdLibp2p,
    private readonly replica: Replica,
    private readonly batchMs: number,
    private readonly log: Logger
  ) {}

  start (): void {
    const pubsub = this.node.services.pubsub
    pubsub.subscribe(DELTA_TOPIC)
    pubsub.addEventListener('message', evt => { this.receive(evt.detail) })
  }

  /** Queue own new counts for the next batch. */
  enqueue (entries: StoredEntry[]): void {
    for (const e of entries) {
      const prev = this.pending.get(e.name)
      if (prev === undefined || e.count > prev) this.pending.set(e.name, e.count)
    }
    if (this.timer === undefined) this.timer = setTimeout(() => { this.flush() }, this.batchMs)
  }

  flush (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.size === 0) return
    const all = [...this.pending]
    this.pending = new Map()
    for (let i = 0; i < all.length; i += MAX_DELTAS_PER_MESSAGE) {
      const deltas = all.slice(i, i + MAX_DELTAS_PER_MESSAGE)
      const bytes = encodeDelta({ sentAt: Date.now(), deltas })
      metrics.deltasPublished.inc(deltas.length)
      metrics.deltaMessagesPublished.inc()
      metrics.deltaBytesPublished.inc(bytes.length)
      // Best effort: anti-entropy repairs whatever gossip drops.
      this.node.services.pubsub.publish(DELTA_TOPIC, bytes).catch(err => {
        this.log.debug({ err: err.message }, 'gossip publish failed')
      })
    }
  }

  private receive (msg: Message): void {
    if (msg.topic !== DELTA_TOPIC) return
    try {
      // Deltas are the signer's own counts: unsigned messages are dropped.
      if (msg.type !== 'signed') {
        this.log.debug('dropped unsigned delta')
        return
      }
      const origin = msg.from.toString()
      const delta = decodeDelta(msg.data)
      metrics.deltasReceived.inc(delta.deltas.length)
      metrics.deltaBytesReceived.inc(msg.data.length)
      const lag = Date.now() - delta.sentAt
      if (lag >= 0 && lag < 3600_000) metrics.replicationLag.observe(lag / 1000)
      void this.replica.mergeRemote(delta.deltas.map(([name, count]) => ({ name, replica: origin, count }))).catch(err => {
        this.log.warn({ err: err.message }, 'could not persist gossiped delta')
      })
      this.replica.noteMember(origin, undefined, Date.now())
    } catch (err: any) {
      this.log.debug({ err: err.message }, 'dropped malformed delta')
    }
  }
}
