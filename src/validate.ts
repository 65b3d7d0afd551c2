// Input rules shared by the HTTP API, the CLI and the wire codec.

const NAME_RE = /^[A-Za-z0-9._~-]{1,200}$/
/** A libp2p peer id in base58btc: the replica id. */
const REPLICA_ID_RE = /^[1-9A-HJ-NP-Za-km-z]{20,128}$/
/** Items per POST /items, SADD and AddItems. */
export const MAX_ITEMS = 10000
/** IDs per GET /ids and NextIds. */
export const MAX_IDS = 10000
const INT_RE = /^[0-9]{1,16}$/
export const MAX_INCREMENT = BigInt(Number.MAX_SAFE_INTEGER)

export function isValidName (name: string): boolean {
  return NAME_RE.test(name)
}

/**
 * Keys that replicate (counter names, tenants): the name rule plus ':', the
 * separator of Redis key names. The HTTP and gRPC APIs take the name rule
 * (SPEC §2); the Redis protocol also takes ':' so that Redis clients and
 * tools work unchanged (redis-benchmark's INCR uses "counter:<n>").
 */
const KEY_RE = /^[A-Za-z0-9._~:-]{1,200}$/
export function isValidKey (key: string): boolean {
  return KEY_RE.test(key)
}

export function isReplicaId (id: string): boolean {
  return REPLICA_ID_RE.test(id)
}

/**
 * Parse an increment: decimal digits only, 1 <= N <= 2^53-1. Returns undefined
 * for anything else (0, sign, fraction, exponent, hex, overflow, junk).
 */
export function parseIncrement (v: unknown): bigint | undefined {
  if (typeof v === 'number') {
    return Number.isSafeInteger(v) && v >= 1 ? BigInt(v) : undefined
  }
  if (typeof v !== 'string' || !INT_RE.test(v)) return undefined
  const n = BigInt(v)
  return n >= 1n && n <= MAX_INCREMENT ? n : undefined
}

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/

/**
 * An item id: 1-256 bytes of UTF-8 without control characters (C0, DEL, C1)
 * and without lone surrogates (they would encode as U+FFFD and collide with it).
 */
export function isValidItemId (id: string): boolean {
  if (id.length === 0 || id.length > 256 || CONTROL_RE.test(id) || !id.isWellFormed()) return false
  return Buffer.byteLength(id, 'utf8') <= 256
}

/** A tenant follows the counter-name rule. */
export const isValidTenant = isValidName
