// Requests of the Redis protocol as a Redis server reads them
// (networking.c: processMultibulkBuffer, processInlineBuffer, sdssplitargs).
// redis-parser, used before, is a client's parser of replies: it took any
// bytes as a length (`$abc`, `$999999999999` left a connection waiting
// forever where Redis answers "Protocol error: invalid bulk length"), knew no
// inline commands and no quoting in them. Pure: bytes in, commands out.
//
//   multibulk: *<n>\r\n then n times $<len>\r\n<len bytes>\r\n
//   inline:    words separated by spaces, "double" (with \n \r \t \b \a \\ \" \xHH)
//              or 'single' quoted (with \'), ended by \n (\r\n too)

/** A request that breaks the protocol: answered `-ERR Protocol error: ...`, then the connection closes. */
export class ProtocolError extends Error {}

const MAX_INLINE = 64 * 1024
const MAX_ARGS = 1024 * 1024

const CR = 0x0d
const LF = 0x0a

export class RequestParser {
  /** Unread bytes; `pos` is where the next command starts. */
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0
  /** Chunks held back while a large bulk is incomplete (joined once it can be complete). */
  private held: Buffer[] = []
  private heldBytes = 0
  /** Bytes the buffer must reach before parsing can progress (0: unknown, try at once). */
  private need = 0

  constructor (private readonly maxBulk: number) {}

  /** Bytes received and not yet part of a command (the client's unfinished request). */
  get pending (): number { return this.buf.length - this.pos + this.heldBytes }

  feed (chunk: Buffer): void {
    if (this.need > 0 && this.buf.length - this.pos + this.heldBytes + chunk.length < this.need) {
      this.held.push(chunk)
      this.heldBytes += chunk.length
      return
    }
    const rest = this.buf.subarray(this.pos)
    this.buf = rest.length === 0 && this.held.length === 0 ? chunk : Buffer.concat([rest, ...this.held, chunk])
    this.pos = 0
    this.held = []
    this.heldBytes = 0
    this.need = 0
  }

  /**
   * The next complete command (its words; [] for an empty line or `*0`), or
   * undefined until more bytes arrive. Throws ProtocolError.
   */
  next (): Buffer[] | undefined {
    if (this.need > 0 || this.pos >= this.buf.length) return undefined
    return this.buf[this.pos] === 0x2a ? this.multibulk() : this.inline()
  }

  private multibulk (): Buffer[] | undefined {
    const buf = this.buf
    let at = this.pos
    const count = this.headerNumber(at, 'multibulk count')
    if (count === undefined) return undefined
    at = count.end
    if (count.n > MAX_ARGS) throw new ProtocolError('invalid multibulk length')
    const args: Buffer[] = []
    for (let i = 0; i < count.n; i++) {
      if (at >= buf.length) return undefined
      if (buf[at] !== 0x24) throw new ProtocolError(`expected '$', got '${String.fromCharCode(buf[at])}'`)
      const len = this.headerNumber(at, 'bulk count')
      if (len === undefined) return undefined
      if (len.n < 0 || len.n > this.maxBulk) throw new ProtocolError('invalid bulk length')
      if (len.end + len.n + 2 > buf.length) {
        this.need = len.end + len.n + 2 - this.pos
        return undefined
      }
      args.push(buf.subarray(len.end, len.end + len.n))
      at = len.end + len.n + 2
    }
    this.pos = at
    return args
  }

  /** `*<n>\r\n` or `$<n>\r\n` starting at `at` (the type byte): the number and where the line ends. */
  private headerNumber (at: number, what: string): { n: number, end: number } | undefined {
    const buf = this.buf
    const cr = buf.indexOf(CR, at + 1)
    if (cr < 0 || cr + 1 >= buf.length) {
      if (buf.length - at > MAX_INLINE) throw new ProtocolError(`too big ${what} string`)
      return undefined
    }
    const digits = buf.toString('latin1', at + 1, cr)
    if (buf[cr + 1] !== LF || !/^-?[0-9]{1,18}$/.test(digits)) throw new ProtocolError(what === 'bulk count' ? 'invalid bulk length' : 'invalid multibulk length')
    return { n: Number(digits), end: cr + 2 }
  }

  private inline (): Buffer[] | undefined {
    const buf = this.buf
    const lf = buf.indexOf(LF, this.pos)
    if (lf < 0) {
      if (buf.length - this.pos > MAX_INLINE) throw new ProtocolError('too big inline request')
      return undefined
    }
    const end = lf > this.pos && buf[lf - 1] === CR ? lf - 1 : lf
    const line = buf.subarray(this.pos, end)
    this.pos = lf + 1
    const words = splitArgs(line)
    if (words === undefined) throw new ProtocolError('unbalanced quotes in request')
    return words
  }
}

const ESCAPES: Record<number, number> = { 0x6e: LF, 0x72: CR, 0x74: 0x09, 0x62: 0x08, 0x61: 0x07 }
const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === LF || c === CR || c === 0x0b || c === 0x0c
const hexVal = (c: number): number => (c >= 0x30 && c <= 0x39) ? c - 0x30 : (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66 ? (c | 0x20) - 0x57 : -1

/** Redis' sdssplitargs: the words of an inline line, or undefined for unbalanced quotes. */
export function splitArgs (line: Buffer): Buffer[] | undefined {
  const out: Buffer[] = []
  let i = 0
  while (true) {
    while (i < line.length && isSpace(line[i])) i++
    if (i >= line.length) return out
    const word: number[] = []
    let inDouble = false
    let inSingle = false
    for (;;) {
      const c = line[i]
      if (inDouble) {
        if (i >= line.length) return undefined
        if (c === 0x5c && line[i + 1] === 0x78 && hexVal(line[i + 2]) >= 0 && hexVal(line[i + 3]) >= 0) {
          word.push(hexVal(line[i + 2]) * 16 + hexVal(line[i + 3]))
          i += 3
        } else if (c === 0x5c && i + 1 < line.length) {
          i++
          word.push(ESCAPES[line[i]] ?? line[i])
        } else if (c === 0x22) {
          // A closing quote must be followed by a space or the end.
          if (i + 1 < line.length && !isSpace(line[i + 1])) return undefined
          inDouble = false
          i++
          break
        } else {
          word.push(c)
        }
      } else if (inSingle) {
        if (i >= line.length) return undefined
        if (c === 0x5c && line[i + 1] === 0x27) {
          i++
          word.push(0x27)
        } else if (c === 0x27) {
          if (i + 1 < line.length && !isSpace(line[i + 1])) return undefined
          inSingle = false
          i++
          break
        } else {
          word.push(c)
        }
      } else {
        if (i >= line.length || isSpace(c)) break
        if (c === 0x22) inDouble = true
        else if (c === 0x27) inSingle = true
        else word.push(c)
      }
      i++
    }
    out.push(Buffer.from(word))
  }
}
