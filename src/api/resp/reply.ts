// RESP2 reply encoders. Replies are built as strings (one socket write per
// batch of ready replies); only echoes of client bytes are Buffers.

export type Reply = string | Buffer

/** RESP integers are signed 64-bit; larger counter values go out as bulk strings. */
const MAX_RESP_INTEGER = (1n << 63n) - 1n

export const OK = '+OK\r\n'
export const NIL = '$-1\r\n'
export const EMPTY_ARRAY = '*0\r\n'

export function simple (s: string): string {
  return `+${s.replace(/[\r\n]+/g, ' ')}\r\n`
}

/** `msg` starts with the error code word: "ERR ...", "NOAUTH ...". */
export function errorReply (msg: string): string {
  return `-${msg.replace(/[\r\n]+/g, ' ')}\r\n`
}

export function integer (n: number | bigint): string {
  if (typeof n === 'bigint' && n > MAX_RESP_INTEGER) return bulk(n.toString())
  return `:${n}\r\n`
}

export function bulk (s: string | null): string {
  if (s === null) return NIL
  return `$${Buffer.byteLength(s)}\r\n${s}\r\n`
}

export function bulkBytes (b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])
}

/** An array of already-encoded string replies. */
export function array (items: string[]): string {
  return `*${items.length}\r\n${items.join('')}`
}
