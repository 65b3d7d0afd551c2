// Delta dissemination over gossipsub, for every dataset. Own durable writes
// are collected for a few milliseconds and published as one message per
// batch; each entry carries its whole new value (idempotent and
// order-insensitive). Frames: src/net/wire.ts.
import type { Message } from '@libp2p/gossipsub'
import type { Replica, Entry } from '../replica.js'
import { encodeDelta, decodeDelta, DELTA_TOPIC } from './wire.js'
import { metrics } from '../metrics.js'
import type { CountdLibp2p } from './node.js'
import type { Logger } from 'pino'

/** Largest number of entries in one gossip message (keeps messages well under 1 MiB). */
const MAX_ENTRIES_PER_MESSAGE = 5000

export class DeltaGossip {
  /** Pending own entries by dataset/key/sub: only the newest value of each is sent. */
  private pending = new Map<string, Entry>()
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

  /**
   * Queue own new entries for the next batch. With no subscriber yet there is
   * nobody to send them to: encoding and signing them would be wasted (a
   * single node spent ~6 % of its CPU there). A peer that subscribes later
   * gets them from anti-entropy, as it gets everything written before it came.
   */
  enqueue (entries: Entry[]): void {
    if (this.node.services.pubsub.getSubscribers(DELTA_TOPIC).length === 0) return
    for (const e of entries) {
      // Own entries of a dataset whose sub is the origin all have sub = this
      // replica: the key alone tells them apart (and is shorter to hash).
      const id = this.replica.lookup(e.ds)?.subIsOrigin === true ? `${e.ds}/${e.key}` : `${e.ds}/${e.key}/${e.sub}`
      const prev = this.pending.get(id)
      if (prev === undefined || e.value > prev.value) this.pending.set(id, e)
    }
    if (this.timer === undefined) this.timer = setTimeout(() => { this.flush() }, this.batchMs)
  }

  flush (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.size === 0) return
    const all = [...this.pending.values()]
    this.pending = new Map()
    for (let i = 0; i < all.length; i += MAX_ENTRIES_PER_MESSAGE) {
      const entries = all.slice(i, i + MAX_ENTRIES_PER_MESSAGE)
      const bytes = encodeDelta({ sentAt: Date.now(), entries }, this.replica.lookup, this.replica.id)
      metrics.deltasPublished.inc(entries.length)
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
      // Deltas speak for their signer: unsigned messages are dropped.
      if (msg.type !== 'signed') {
        this.log.debug('dropped unsigned delta')
        return
      }
      const origin = msg.from.toString()
      const delta = decodeDelta(msg.data, this.replica.lookup, origin)
      // An entry owned by a replica (a counter's count) counts only from that replica.
      const entries = delta.entries.filter(e => {
        const owner = this.replica.kinds.get(e.ds)?.ownerOf(e.key, e.sub)
        return owner === undefined || owner === origin
      })
      metrics.deltasReceived.inc(entries.length)
      metrics.deltaBytesReceived.inc(msg.data.length)
      const lag = Date.now() - delta.sentAt
      if (lag >= 0 && lag < 3600_000) metrics.replicationLag.observe(lag / 1000)
      void this.replica.mergeRemote(entries).catch(err => {
        this.log.warn({ err: err.message }, 'could not persist gossiped delta')
      })
      this.replica.members.note(origin, undefined, Date.now())
    } catch (err: any) {
      this.log.debug({ err: err.message }, 'dropped malformed delta')
    }
  }
}
