// Peer addresses as users type them: full multiaddrs, host:port or host.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { isIP } from 'node:net'

export const DEFAULT_P2P_PORT = 7778

/** Parse one peer address; throws an Error with a user-facing message. */
export function parsePeerAddr (input: string): Multiaddr {
  const s = input.trim()
  if (s.startsWith('/')) {
    try {
      return multiaddr(s)
    } catch (err: any) {
      throw new Error(`invalid multiaddr "${s}": ${err.message}`)
    }
  }
  let host = s
  let port = DEFAULT_P2P_PORT
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s)
  if (m === null) {
    if (isIP(s) === 6) host = s
    else throw new Error(`invalid peer address "${s}" (want host, host:port or a multiaddr)`)
  } else {
    host = m[1]
    if (m[2] !== undefined) port = Number(m[2])
  }
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid peer address "${s}"`)
  const proto = isIP(host) === 4 ? 'ip4' : isIP(host) === 6 ? 'ip6' : 'dns4'
  if (proto === 'dns4' && !/^[A-Za-z0-9.-]+$/.test(host)) throw new Error(`invalid host in peer address "${s}"`)
  return multiaddr(`/${proto}/${host}/tcp/${port}`)
}

/** A multiaddr string without its trailing /p2p/<id>. */
export function withoutPeerId (addr: string): string {
  const i = addr.indexOf('/p2p/')
  return i === -1 ? addr : addr.slice(0, i)
}
