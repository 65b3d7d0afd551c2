// The read protocol behind consistent_value: ask one member for its current
// state of one counter (plus the member list, so a reader discovers members
// it did not know about yet).
//
//   I -> R  {k: 'read', n: name}
//   R -> I  {k: 'state', r, e, m: members}
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import type { Replica, StoredEntry, Member } from '../replica.js'
import { encodeFrame, decodeFrame, packEntries, unpackEntries, packMembers, unpackMembers, ProtocolError } from './codec.js'
import { isValidName } from '../validate.js'

export const READ_PROTOCOL = '/countd/read/1'
const MAX_FRAME = 16 * 1024 * 1024

export async function requestState (stream: Stream, name: string, signal: AbortSignal): Promise<{ entries: StoredEntry[], members: Member[] }> {
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
  try {
    await lp.write(encodeFrame({ k: 'read', n: name }), { signal })
    const f = decodeFrame((await lp.read({ signal })).subarray())
    if (f.k !== 'state') throw new ProtocolError('expected state frame')
    const result = { entries: unpackEntries(f), members: unpackMembers(f.m) }
    await stream.close({ signal })
    return result
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

export async function serveState (replica: Replica, stream: Stream): Promise<void> {
  const signal = AbortSignal.timeout(10000)
  const lp = lpStream(stream, { maxDataLength: 64 * 1024 })
  try {
    const f = decodeFrame((await lp.read({ signal })).subarray())
    if (f.k !== 'read' || typeof f.n !== 'string' || !isValidName(f.n)) throw new ProtocolError('bad read request')
    const name = f.n
    const entries = replica.entriesOf(name).map(([replicaId, count]) => ({ name, replica: replicaId, count }))
    await lp.write(encodeFrame({ k: 'state', ...packEntries(entries), m: packMembers(replica.members.values()) }), { signal })
    await stream.close({ signal })
  } catch (err) {
    stream.abort(err as Error)
  }
}
