// Reading a countd ID (SPEC §6): bit 63 = 0 | 41 bits milliseconds since
// 2026-01-01T00:00:00.000Z | 10 bits node slot | 12 bits sequence. Pure.

export const ID_EPOCH_MS = Date.UTC(2026, 0, 1)

export interface DecodedId { id: string, time: string, node: number, sequence: number }

/** Decode a decimal ID string; undefined unless it is canonical decimal below 2^63. */
export function decodeId (text: string): DecodedId | undefined {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(text)) return undefined
  const id = BigInt(text)
  if (id >= 1n << 63n) return undefined
  return {
    id: text,
    time: new Date(ID_EPOCH_MS + Number(id >> 22n)).toISOString(),
    node: Number((id >> 12n) & 1023n),
    sequence: Number(id & 4095n)
  }
}
