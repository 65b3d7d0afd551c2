// Input rules the Redis-protocol and gRPC front ends share: the same rules
// as the HTTP API (SPEC §2, §5), applied before anything reaches the service
// so bad input never changes state. The rules themselves are src/validate.ts.
import { isValidName, isValidKey, parseIncrement, isValidItemId } from '../../validate.js'
import { BadInputError } from '../../errors.js'

// ignoreBOM: a leading U+FEFF is part of an item id, not a mark to drop.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** A Redis key naming a counter: the name rule plus ':' (src/validate.ts isValidKey; tenants keep checkName). */
export function checkRedisKey (name: string, what = 'counter name'): string {
  if (!isValidKey(name)) throw new BadInputError(`invalid ${what} ${JSON.stringify(name.slice(0, 210))}: 1-200 characters of A-Z a-z 0-9 . _ ~ - :`)
  return name
}

export function checkName (name: string, what = 'counter name'): string {
  if (!isValidName(name)) throw new BadInputError(`invalid ${what} ${JSON.stringify(name.slice(0, 210))}: 1-200 characters of A-Z a-z 0-9 . _ ~ -`)
  return name
}

/** 1 <= N <= 2^53-1 as decimal text (or a safe integer). */
export function checkIncrement (v: unknown): bigint {
  const by = parseIncrement(v)
  if (by === undefined) throw new BadInputError('increment must be an integer from 1 to 9007199254740991 (counters only grow)')
  return by
}

export function checkItemId (id: string): string {
  if (!isValidItemId(id)) throw new BadInputError(`invalid item id ${JSON.stringify(id.slice(0, 40))}: 1-256 bytes of UTF-8, no control characters`)
  return id
}

/** Decode bytes that must be UTF-8 (item ids); anything else is bad input. */
export function utf8 (b: Buffer): string {
  try {
    return strictUtf8.decode(b)
  } catch {
    throw new BadInputError('item id is not valid UTF-8')
  }
}

