// The 64-bit ID layout of SPEC §6 (Snowflake), so any client can decode an
// ID without asking:
//   bit 63 = 0 | 41 bits ms since 2026-01-01T00:00:00.000Z | 10 bits slot | 12 bits sequence
// Pure.

export const ID_EPOCH_MS = Date.UTC(2026, 0, 1)
export const SLOT_BITS = 10
export const SEQUENCE_BITS = 12
export const MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
export const MAX_SLOT = (1 << SLOT_BITS) - 1
/** 2^41 - 1 ms after the epoch: year 2095. */
export const MAX_TIME = 2 ** 41 - 1
const MAX_ID = (1n << 63n) - 1n

export function encodeId (ms: number, slot: number, sequence: number): bigint {
  return (BigInt(ms) << 22n) | (BigInt(slot) << 12n) | BigInt(sequence)
}

export interface DecodedId { ms: number, slot: number, sequence: number }

export function decodeId (id: bigint): DecodedId {
  return { ms: Number(id >> 22n), slot: Number((id >> 12n) & 0x3ffn), sequence: Number(id & 0xfffn) }
}

/** A decimal ID (digits only, below 2^63), else undefined. */
export function parseId (text: string): bigint | undefined {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(text)) return undefined
  const id = BigInt(text)
  return id <= MAX_ID ? id : undefined
}

/** The wall-clock time of an ID, ISO 8601. */
export function idTime (id: bigint): string {
  return new Date(ID_EPOCH_MS + decodeId(id).ms).toISOString()
}
