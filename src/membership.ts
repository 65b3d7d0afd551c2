// Who is in the cluster: every replica id that ever contributed and every
// peer seen, with last known addresses and last-seen times, persisted and
// merged with what peers tell us. Plus the join gate: when a node may
// acknowledge writes.
import type { Store, MemberRecord } from './store/store.js'
import { Listeners } from './util/listeners.js'

export type Member = MemberRecord

/**
 * A retired member counts again only when seen this long after its
 * retirement. Sightings are stamped when an event is processed, and a busy
 * node can process a dead member's last gossip message or hello seconds
 * late: without the grace that stale sighting would bring the member back,
 * and every consistent read would then wait for a node that no longer
 * exists (found by the chaos harness under CPU load, issue 15).
 */
export const RETIRE_GRACE_MS = 30000

/**
 * Retired by an operator (DELETE /members/:id) and not seen since (beyond
 * the grace): no longer needed for consistent reads. Both times only grow,
 * so the rule merges the same way on every node whatever order the news
 * arrives in.
 */
export function isRetired (m: Member): boolean {
  const retiredAt = m.retiredAt ?? 0
  return retiredAt > 0 && m.lastSeen < retiredAt + RETIRE_GRACE_MS
}

/** Persist a member's last-seen time at most this often: it is advisory. */
const LAST_SEEN_PERSIST_MS = 10000

export class Membership {
  private readonly all = new Map<string, Member>()
  /** A replica id not seen before showed up (as a peer or a contributor). */
  readonly added = new Listeners<Member>()

  constructor (readonly self: string, private readonly store: Store) {}

  async load (): Promise<void> {
    for (const m of await this.store.members()) this.all.set(m.id, m)
    this.note(this.self, [], Date.now())
  }

  has (id: string): boolean { return this.all.has(id) }
  get (id: string): Member | undefined { return this.all.get(id) }
  get size (): number { return this.all.size }
  values (): IterableIterator<Member> { return this.all.values() }

  /** Record that `id` exists (and optionally where and when it was seen). */
  note (id: string, addrs?: string[], seenAt?: number): Member {
    return this.merge({ id, addrs: addrs ?? [], lastSeen: seenAt ?? 0 })
  }

  /** Merge what a peer (or we) know of a member: times take the max, addrs the newest. */
  merge (news: Member): Member {
    let m = this.all.get(news.id)
    const isNew = m === undefined
    if (m === undefined) {
      m = { id: news.id, addrs: [], lastSeen: 0 }
      this.all.set(news.id, m)
    }
    let changed = isNew
    if (news.addrs.length > 0 && (m.addrs.length === 0 || news.lastSeen >= m.lastSeen) && news.addrs.join() !== m.addrs.join()) {
      m.addrs = news.addrs
      changed = true
    }
    if (news.lastSeen - m.lastSeen > LAST_SEEN_PERSIST_MS) changed = true
    m.lastSeen = Math.max(m.lastSeen, news.lastSeen)
    if ((news.retiredAt ?? 0) > (m.retiredAt ?? 0)) {
      m.retiredAt = news.retiredAt
      changed = true
    }
    if (changed) this.store.saveMember(m)
    if (isNew) this.added.emit(m)
    return m
  }

  /** Retire a member for good: consistent reads stop waiting for it; its data stays. */
  retire (id: string, now: number): boolean {
    const m = this.all.get(id)
    if (m === undefined || id === this.self) return false
    m.retiredAt = Math.max(now, m.lastSeen + 1)
    this.store.saveMember(m)
    return true
  }

  /** Members a consistent read must hear from (all but self and retired). */
  active (): Member[] {
    return [...this.all.values()].filter(m => m.id !== this.self && !isRetired(m))
  }
}

/** How long a write (or a consistent read) waits for a not-yet-joined replica to join. */
export const JOIN_WAIT_MS = 3000

/**
 * When a node may acknowledge writes. A replica that belongs to a cluster
 * (peers configured or known) but that no other member knows of yet refuses
 * them: a consistent read elsewhere could not know to ask it, and would
 * answer 200 without its writes. Once one member is known to know this
 * replica id (it answered a frame that followed our hello, or listed us in
 * its member list), every consistent read finds us through that member's
 * member list. A node with no peers is a one-node cluster and may write.
 * The flag is persisted: a member that knew us keeps knowing us.
 */
export class JoinGate {
  private joined = false
  /** Peers were configured: this replica belongs to a cluster. */
  clusterExpected = false
  private readonly waiters: Array<() => void> = []

  constructor (private readonly store: Store, private readonly members: Membership) {}

  async load (): Promise<void> {
    this.joined = await this.store.flag('joined')
  }

  get isJoined (): boolean { return this.joined }

  writable (): boolean {
    return this.joined || !(this.clusterExpected || this.members.size > 1)
  }

  /** A member is known to know our replica id. */
  markJoined (): void {
    if (this.joined) return
    this.joined = true
    this.store.setFlag('joined').catch(() => {})
    for (const wake of this.waiters.splice(0)) wake()
  }

  /** Resolve once writable, or after `timeoutMs`; returns writable(). */
  async whenWritable (timeoutMs: number): Promise<boolean> {
    if (this.writable()) return true
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, timeoutMs)
      this.waiters.push(() => { clearTimeout(timer); resolve() })
    })
    return this.writable()
  }
}
