// The API token check shared by every front end (HTTP bearer, Redis AUTH,
// gRPC metadata). Constant time: both sides are hashed first, so lengths are
// equal and timingSafeEqual applies. The token is read at each call, so a
// SIGHUP that changes it takes effect at once.
import { createHash, timingSafeEqual } from 'node:crypto'

/** `Authorization: Bearer TOKEN`; the scheme is case-insensitive (RFC 7235). */
export const BEARER = /^bearer +(\S.*)$/i

export function tokenMatches (token: string, given: string): boolean {
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(token).digest())
}

/** A check against whatever token `current()` holds now; undefined when none is set. */
export function liveTokenCheck (current: () => string | undefined): () => ((given: string) => boolean) | undefined {
  return () => {
    const token = current()
    return token === undefined ? undefined : given => tokenMatches(token, given)
  }
}
