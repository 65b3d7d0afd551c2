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
  /** Received bytes live in buf[pos, end); the buffer grows by doubling and is compacted, never re-copied per chunk. */
  private buf: Buffer = Buffer.allocUnsafe(SMALL_BUFFER)
  private pos = 0
  private end = 0
  /** The multibulk command being read: its argument count and the arguments read so far (kept across chunks). */
  private command: { count: number, args: Buffer[], bytes: number } | undefined

  constructor (private readonly maxBulk: number) {}

  /** Bytes of the unfinished command (the client's request so far). */
  get pending (): number { return this.end - this.pos + (this.command?.bytes ?? 0) }

  feed (chunk: Buffer): void {
    if (this.pos === this.end && this.buf.length > SMALL_BUFFER) {
      // Idle: give back what a big command made us hold.
      this.buf = Buffer.allocUnsafe(SMALL_BUFFER)
      this.pos = this.end = 0
    }
    const live = this.end - this.pos
    if (this.end + chunk.length > this.buf.length) {
      if (live + chunk.length <= this.buf.length >> 1) {
        this.buf.copyWithin(0, this.pos, this.end)
      } else {
        let size = this.buf.length
        while (size < (live + chunk.length) * 2) size *= 2
        const grown = Buffer.allocUnsafe(size)
        this.buf.copy(grown, 0, this.pos, this.end)
        this.buf = grown
      }
      this.pos = 0
      this.end = live
    }
    chunk.copy(this.buf, this.end)
    this.end += chunk.length
  }

  /**
   * The next complete command (its words, copies the caller may keep; []
   * for an empty line or `*0`), or undefined until more bytes arrive.
   * Throws ProtocolError. Each call resumes where the last one stopped, so
   * a command arriving in many small chunks costs what its bytes do.
   */
  next (): Buffer[] | undefined {
    if (this.command === undefined) {
      if (this.pos >= this.end) return undefined
      if (this.buf[this.pos] !== 0x2a) return this.inline()
      const whole = this.wholeCommand()
      if (whole !== undefined) return whole
      const count = this.headerNumber(this.pos, 'multibulk count')
      if (count === undefined) return undefined
      if (count > MAX_ARGS) throw new ProtocolError('invalid multibulk length')
      this.command = { count, args: [], bytes: this.lineEnd - this.pos }
      this.pos = this.lineEnd
    }
    const cmd = this.command
    while (cmd.args.length < cmd.count) {
      if (this.pos >= this.end) return undefined
      if (this.buf[this.pos] !== 0x24) throw new ProtocolError(`expected '$', got '${String.fromCharCode(this.buf[this.pos])}'`)
      const len = this.headerNumber(this.pos, 'bulk count')
      if (len === undefined) return undefined
      if (len < 0 || len > this.maxBulk) throw new ProtocolError('invalid bulk length')
      const at = this.lineEnd
      if (at + len + 2 > this.end) return undefined
      cmd.args.push(Buffer.from(this.buf.subarray(at, at + len)))
      cmd.bytes += at + len + 2 - this.pos
      this.pos = at + len + 2
    }
    this.command = undefined
    return cmd.args
  }

  /**
   * The common case, fast: a multibulk command of small arguments whose
   * bytes are all here, read in one pass and copied out in one allocation
   * (the words are views of that copy). Undefined (nothing consumed) for
   * anything else, which the general path reads or refuses.
   */
  private wholeCommand (): Buffer[] | undefined {
    const buf = this.buf
    const count = this.smallNumber(this.pos + 1)
    if (count < 1 || count > 64) return undefined
    let at = this.lineEnd
    const starts: number[] = []
    for (let i = 0; i < count; i++) {
      if (at >= this.end || buf[at] !== 0x24) return undefined
      const len = this.smallNumber(at + 1)
      if (len < 0 || len > 4096 || len > this.maxBulk) return undefined
      at = this.lineEnd
      if (at + len + 2 > this.end || buf[at + len] !== CR || buf[at + len + 1] !== LF) return undefined
      starts.push(at, len)
      at += len + 2
    }
    const copy = Buffer.from(buf.subarray(this.pos, at))
    const base = this.pos
    const args: Buffer[] = []
    for (let i = 0; i < starts.length; i += 2) args.push(copy.subarray(starts[i] - base, starts[i] - base + starts[i + 1]))
    this.pos = at
    return args
  }

  /**
   * Digits from `from` up to a CRLF, as Redis writes them (no sign, no
   * leading zero, at most 9 digits): the number, with lineEnd after the LF;
   * -1 for anything else.
   */
  private smallNumber (from: number): number {
    const buf = this.buf
    let n = 0
    let i = from
    for (; i < this.end && i - from < 9; i++) {
      const c = buf[i]
      if (c === CR) break
      if (c < 0x30 || c > 0x39 || (c === 0x30 && i === from && buf[i + 1] !== CR)) return -1
      n = n * 10 + c - 0x30
    }
    if (i === from || i + 1 >= this.end || buf[i] !== CR || buf[i + 1] !== LF) return -1
    this.lineEnd = i + 2
    return n
  }

  /** Where the line of the last header read (headerNumber, smallNumber) ends. */
  private lineEnd = 0

  /** `*<n>\r\n` or `$<n>\r\n` starting at `at` (the type byte): the number (lineEnd: where the line ends). */
  private headerNumber (at: number, what: string): number | undefined {
    const cr = this.buf.subarray(0, this.end).indexOf(CR, at + 1)
    if (cr < 0 || cr + 1 >= this.end) {
      if (this.end - at > MAX_INLINE) throw new ProtocolError(`too big ${what} string`)
      return undefined
    }
    const digits = this.buf.toString('latin1', at + 1, cr)
    if (this.buf[cr + 1] !== LF || !/^(?:0|-?[1-9][0-9]{0,17})$/.test(digits)) throw new ProtocolError(what === 'bulk count' ? 'invalid bulk length' : 'invalid multibulk length')
    this.lineEnd = cr + 2
    return Number(digits)
  }

  private inline (): Buffer[] | undefined {
    const lf = this.buf.subarray(0, this.end).indexOf(LF, this.pos)
    if (lf < 0) {
      if (this.end - this.pos > MAX_INLINE) throw new ProtocolError('too big inline request')
      return undefined
    }
    const stop = lf > this.pos && this.buf[lf - 1] === CR ? lf - 1 : lf
    const words = splitArgs(this.buf.subarray(this.pos, stop))
    this.pos = lf + 1
    if (words === undefined) throw new ProtocolError('unbalanced quotes in request')
    return words
  }
}

const SMALL_BUFFER = 16 * 1024

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
    /** The quote the word is inside of (0x22 ", 0x27 '), or 0. */
    let quote = 0
    for (;;) {
      const c = line[i]
      if (quote !== 0) {
        if (i >= line.length) return undefined
        if (quote === 0x22 && c === 0x5c && line[i + 1] === 0x78 && hexVal(line[i + 2]) >= 0 && hexVal(line[i + 3]) >= 0) {
          word.push(hexVal(line[i + 2]) * 16 + hexVal(line[i + 3]))
          i += 3
        } else if (c === 0x5c && (quote === 0x22 ? i + 1 < line.length : line[i + 1] === 0x27)) {
          // "...": \n \r \t \b \a, any other char as itself; '...': only \'
          i++
          word.push(quote === 0x22 ? (ESCAPES[line[i]] ?? line[i]) : 0x27)
        } else if (c === quote) {
          // A closing quote must be followed by a space or the end.
          if (i + 1 < line.length && !isSpace(line[i + 1])) return undefined
          i++
          break
        } else {
          word.push(c)
        }
      } else {
        if (i >= line.length || isSpace(c)) break
        if (c === 0x22 || c === 0x27) quote = c
        else word.push(c)
      }
      i++
    }
    out.push(Buffer.from(word))
  }
}
