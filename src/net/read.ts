// Consistent reads: both halves. A reader fetches the current state of what
// it reads from EVERY active member (discovering members from the answers'
// member lists) and merges it before answering; if some member cannot be
// read in time, the read fails rather than answer short.
//
// How one member is read depends on the dataset: a key whose entries sit in
// one place (a counter) is fetched with the read protocol below; a key spread
// over the whole digest tree (a tenant's items) is read by running a full
// anti-entropy exchange with the member, started after the read began.
//
//   I -> R  {k: 'read', v: 2, ds: tag, key}
//   R -> I  {k: 'state', s, g, m: members}
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Replica, Entry, Member } from '../replica.js'
import { Framed, lpOptions, packEntries, unpackEntries, packMembers, unpackMembers, ProtocolError, WIRE_VERSION } from './wire.js'

/** A read request's own limit: far below MAX_FRAME (it is one small frame). */
const MAX_REQUEST = 64 * 1024
const SERVE_TIMEOUT_MS = 10000

export async function requestState (replica: Replica, stream: Stream, tag: string, key: string, signal: AbortSignal): Promise<{ entries: Entry[], members: Member[] }> {
  const io = new Framed(lpStream(stream, lpOptions()), SERVE_TIMEOUT_MS)
  try {
    await io.write({ k: 'read', v: WIRE_VERSION, ds: tag, key }, signal)
    const f = await io.read('state', signal)
    const result = { entries: unpackEntries(f, replica.lookup), members: unpackMembers(f.m) }
    await stream.close({ signal })
    return result
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

export async function serveState (replica: Replica, stream: Stream): Promise<void> {
  const io = new Framed(lpStream(stream, lpOptions(MAX_REQUEST)), SERVE_TIMEOUT_MS)
  try {
    const f = await io.read('read')
    const kind = typeof f.ds === 'string' ? replica.kinds.get(f.ds) : undefined
    if (kind === undefined || typeof f.key !== 'string' || !kind.isKey(f.key)) throw new ProtocolError('bad read request')
    const entries = replica.entriesOfKey(kind.tag, f.key)
    await io.write({ k: 'state', ...packEntries(entries, replica.lookup), m: packMembers(replica.members.values()) })
    await stream.close({ signal: AbortSignal.timeout(SERVE_TIMEOUT_MS) })
  } catch (err) {
    stream.abort(err as Error)
  }
}

/** Reads one member once (one attempt); `fresh` asks for a new connection. */
export type MemberRead = (id: string, signal: AbortSignal, fresh: boolean) => Promise<void>

/**
 * Read every active member with `readOne` within `timeoutMs`, asking members
 * the answers reveal too. Returns the ids that could not be read in time
 * (empty = the merged local state now includes every member's state as of
 * when the read started).
 */
export async function readEveryMember (replica: Replica, readOne: MemberRead, timeoutMs: number, log: Logger): Promise<string[]> {
  const signal = AbortSignal.timeout(timeoutMs)
  const asked = new Set<string>()
  const failed = new Set<string>()
  const inFlight: Array<Promise<void>> = []
  const askNew = (): void => {
    for (const m of replica.members.active()) {
      if (asked.has(m.id)) continue
      asked.add(m.id)
      inFlight.push(hedgedRead(readOne, m.id, signal, timeoutMs).then(askNew, err => {
        log.debug({ member: m.id, err: err.message }, 'consistent read: member unreachable')
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
  return [...failed]
}

/**
 * Read member `id` before `signal` fires. The read goes over the existing
 * connection; if that has not answered after a third of the timeout
 * (0.5-1.5 s), a second read over a fresh connection races it. (After a
 * partition heals, an old TCP connection can sit in retransmission backoff
 * for seconds while a new one works at once.)
 */
async function hedgedRead (readOne: MemberRead, id: string, signal: AbortSignal, timeoutMs: number): Promise<void> {
  const hedgeAfterMs = Math.round(Math.max(500, Math.min(1500, timeoutMs / 3)))
  const settled = new AbortController()
  const both = AbortSignal.any([signal, settled.signal])
  const hedge = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { retrying(readOne, id, both, true).then(resolve, reject) }, hedgeAfterMs)
    both.addEventListener('abort', () => { clearTimeout(timer); reject(both.reason) }, { once: true })
  })
  try {
    await Promise.any([retrying(readOne, id, both, false), hedge])
  } catch (err) {
    throw (err as AggregateError).errors?.[0] ?? err
  } finally {
    settled.abort()
  }
}

/** Retry transient failures (a connection being replaced) until `signal` fires. */
async function retrying (readOne: MemberRead, id: string, signal: AbortSignal, fresh: boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await readOne(id, signal, fresh && attempt === 0)
      return
    } catch (err) {
      if (signal.aborted) throw err
      await new Promise(resolve => setTimeout(resolve, Math.min(500, 50 * 2 ** attempt)))
    }
  }
}
