// The Redis-protocol front end (SPEC §7): RESP2 over TCP, read as Redis reads
// requests (parser.ts), answered through the CountdService. Replies leave in request
// order even though writes resolve later (after their group commit): each
// connection keeps a queue of reply slots and writes the ready prefix.
// Every write of a pipeline is handed to the service in the same tick, so a
// pipeline's increments share one fsync.
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net'
import { RequestParser, ProtocolError } from './parser.js'
import type { Logger } from 'pino'
import type { CountdService } from '../../service.js'
import { commands, refusal, errorOf, err, RespError, type Command, type Session, type CommandContext } from './commands.js'
import { errorReply, integer, type Reply } from './reply.js'
import { liveTokenCheck } from '../auth.js'
import { tokenGetter, type ListenerOptions, type RunningServer } from '../listener.js'
import { commandMeter, type Meter } from './meter.js'

export type RespServerOptions = ListenerOptions
export type { RunningServer }

/** A command bigger than this closes the connection, as Redis' query buffer limit does (its bulk limit: invalid bulk length). */
const MAX_COMMAND_BYTES = 8 * 1024 * 1024
/** Stop reading from a client that has this many replies outstanding or unread. */
const MAX_PENDING_REPLIES = 20000
const MAX_UNSENT_BYTES = 4 * 1024 * 1024
const CLOSE_GRACE_MS = 2000

interface Slot { reply: Reply | undefined }

/** An increment waiting for the end of its read, to go to the service with the others (flushIncrements). */
interface HeldIncrement { slot: Slot, label: string, start: number }

let nextClientId = 1

class Connection {
  private readonly session: Session
  private readonly parser = new RequestParser(MAX_COMMAND_BYTES)
  /** Replies waiting for an earlier one (from `head` on). */
  private readonly slots: Slot[] = []
  private head = 0
  /** Ready replies not yet handed to the socket. */
  private out = ''
  private flushScheduled = false
  /** No more commands are read (QUIT, protocol error, shutdown); end once replies are out. */
  private closing = false
  private paused = false
  /** Settles once every reply so far is known (what a read waits for). */
  private settled: Promise<unknown> = Promise.resolve()
  /** Settles once every command so far has started; null when none waits. */
  private gate: Promise<void> | null = null
  /** Increments of the current read not yet handed to the service, and their slots. */
  private increments: Array<[string, bigint]> = []
  private held: HeldIncrement[] = []

  constructor (private readonly socket: Socket, private readonly ctx: CommandContext, private readonly meter: Meter, private readonly log: Logger) {
    this.session = { id: nextClientId++, authenticated: ctx.checkToken === undefined, name: null }
    socket.setNoDelay(true)
    socket.on('data', chunk => { this.onData(chunk) })
    socket.on('drain', () => { this.maybeResume() })
    socket.on('error', e => { this.log.debug({ err: e.message, client: this.session.id }, 'resp client socket error') })
  }

  private onData (chunk: Buffer): void {
    if (this.closing) return
    this.parser.feed(chunk)
    try {
      for (let args = this.parser.next(); args !== undefined && !this.closing; args = this.parser.next()) {
        if (args.length > 0) this.dispatch(args) // Redis ignores empty lines and *0
      }
      if (this.parser.pending > MAX_COMMAND_BYTES + 64 * 1024) throw new ProtocolError('command too big') // a bulk of the limit plus headers fits
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      this.protocolError(e.message)
    }
    // Commands read before a malformed frame still run, as in Redis.
    this.flushIncrements()
    this.flush()
    if (this.pendingReplies() > MAX_PENDING_REPLIES || this.socket.writableLength > MAX_UNSENT_BYTES) {
      this.paused = true
      this.socket.pause()
    }
  }

  private dispatch (args: Buffer[]): void {
    const start = performance.now()
    const name = args[0].toString('latin1').toLowerCase()
    const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined
    const label = cmd === undefined ? 'unknown' : name
    if (name === 'quit') this.closing = true // read no further; +OK goes out in order
    // A read must see the writes before it on this connection (as in Redis),
    // so it waits for them; once one command waits, all later ones wait
    // their turn too, so none sees a write sent after it.
    if (cmd?.increment !== undefined && this.gate === null) {
      this.holdIncrement(cmd, name, args, label, start)
      return
    }
    // Whatever comes next starts after the increments before it.
    this.flushIncrements()
    const waitFor = cmd?.read === true && this.pendingReplies() > 0 ? this.settled : this.gate
    let result: Reply | Promise<Reply>
    if (waitFor !== null) {
      const started = waitFor.then(() => this.execute(cmd, name, args))
      this.gate = started.then(() => {}, () => {})
      result = started
    } else {
      try {
        result = this.execute(cmd, name, args)
      } catch (e) {
        this.push(this.failed(e, label, start))
        return
      }
    }
    if (result instanceof Promise) {
      // Two promises per command that waits (the path of every write): its
      // reply's, and the chain a later read waits on (each link settles,
      // never rejects, and is collected once settled).
      const slot: Slot = { reply: undefined }
      this.slots.push(slot)
      const known = result.then(reply => {
        this.meter.done(label, 'ok', start)
        slot.reply = reply
        this.scheduleFlush()
      }, e => {
        slot.reply = this.failed(e, label, start)
        this.scheduleFlush()
      })
      this.settled = Promise.all([this.settled, known])
    } else {
      this.meter.done(label, 'ok', start)
      this.push(result)
    }
  }

  private execute (cmd: Command | undefined, name: string, args: Buffer[]): Reply | Promise<Reply> {
    return this.admit(cmd, name, args).run(args, this.session, this.ctx)
  }

  /** The command, if this session may run it with these arguments; else throws the refusal. */
  private admit (cmd: Command | undefined, name: string, args: Buffer[]): Command {
    if (cmd === undefined) throw refusal(name, args)
    if (!this.session.authenticated && cmd.noAuth !== true) throw new RespError('NOAUTH', 'Authentication required.', 'auth')
    if (cmd.arity > 0 ? args.length !== cmd.arity : args.length < -cmd.arity) throw err(`wrong number of arguments for '${name}' command`)
    return cmd
  }

  /** Take a checked increment's slot now; it goes to the service with the rest of this read's. */
  private holdIncrement (cmd: Command, name: string, args: Buffer[], label: string, start: number): void {
    let item: [string, bigint]
    try {
      item = (this.admit(cmd, name, args).increment as (args: Buffer[]) => [string, bigint])(args)
    } catch (e) {
      this.push(this.failed(e, label, start))
      return
    }
    const slot: Slot = { reply: undefined }
    this.slots.push(slot)
    this.increments.push(item)
    this.held.push({ slot, label, start })
  }

  /** One service call (one write, all-or-nothing) for the increments held; each reply is its own new value. */
  private flushIncrements (): void {
    if (this.increments.length === 0) return
    const held = this.held
    const done = this.ctx.service.incrementMany(this.increments)
    this.increments = []
    this.held = []
    const known = done.then(values => {
      held.forEach((h, i) => {
        this.meter.done(h.label, 'ok', h.start)
        h.slot.reply = integer(values[i])
      })
      this.scheduleFlush()
    }, e => {
      for (const h of held) h.slot.reply = this.failed(e, h.label, h.start)
      this.scheduleFlush()
    })
    this.settled = Promise.all([this.settled, known])
  }

  private failed (e: unknown, label: string, start: number): string {
    const { word, message, outcome } = errorOf(e)
    if (outcome === 'internal') this.log.error({ err: e, command: label }, 'resp command failed')
    this.meter.done(label, outcome, start)
    return errorReply(`${word} ${message}`)
  }

  private pendingReplies (): number {
    return this.slots.length - this.head
  }

  private push (reply: Reply): void {
    if (this.pendingReplies() === 0) this.append(reply)
    else this.slots.push({ reply })
  }

  private append (reply: Reply): void {
    if (typeof reply === 'string') {
      this.out += reply
    } else {
      if (this.out !== '') this.write(this.out)
      this.out = ''
      this.write(reply)
    }
  }

  private write (data: Reply): void {
    if (!this.socket.destroyed) this.socket.write(data)
  }

  /** Many writes resolve in one tick (one group commit): write their replies once. */
  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    process.nextTick(() => {
      this.flushScheduled = false
      this.flush()
      this.maybeResume()
    })
  }

  private flush (): void {
    while (this.head < this.slots.length) {
      const reply = this.slots[this.head].reply
      if (reply === undefined) break
      this.append(reply)
      this.head++
    }
    if (this.head === this.slots.length) {
      this.slots.length = 0
      this.head = 0
      this.gate = null
      this.settled = Promise.resolve()
    }
    if (this.out !== '') {
      this.write(this.out)
      this.out = ''
    }
    if (this.closing && this.pendingReplies() === 0 && !this.socket.destroyed) this.socket.end()
  }

  private maybeResume (): void {
    if (!this.paused || this.closing) return
    if (this.pendingReplies() <= MAX_PENDING_REPLIES / 2 && this.socket.writableLength <= MAX_UNSENT_BYTES / 2) {
      this.paused = false
      this.socket.resume()
    }
  }

  /** A malformed frame: answer it (after the replies before it) and close only this connection. */
  private protocolError (reason: string): void {
    if (this.closing) return
    this.log.debug({ client: this.session.id, reason }, 'resp protocol error: closing the connection')
    this.meter.done('protocol', 'protocol_error', performance.now())
    this.push(errorReply(`ERR Protocol error: ${reason}`))
    this.stopReading()
  }

  stopReading (): void {
    this.closing = true
    this.socket.pause()
    this.flush()
  }
}

export async function startRespServer (service: CountdService, opts: RespServerOptions): Promise<RunningServer> {
  const tokenCheckNow = liveTokenCheck(tokenGetter(opts.token))
  const ctx: CommandContext = {
    service,
    get checkToken () { return tokenCheckNow() },
    consistentTimeoutMs: opts.consistentTimeoutMs ?? 5000
  }
  const meter = commandMeter('resp')
  const log = opts.log.child({ component: 'resp' })
  const open = new Map<Socket, Connection>()
  const server: Server = createServer(socket => {
    open.set(socket, new Connection(socket, ctx, meter, log))
    socket.on('close', () => { open.delete(socket) })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve() })
  })
  server.on('error', e => { log.error({ err: e }, 'resp listener error') })
  const bound = server.address() as AddressInfo
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
  return {
    address: `${host}:${bound.port}`,
    port: bound.port,
    async close () {
      const closed = new Promise<void>(resolve => server.close(() => { resolve() }))
      // Answer what was already received, then hang up; stragglers are cut.
      for (const c of open.values()) c.stopReading()
      const timer = setTimeout(() => { for (const s of open.keys()) s.destroy() }, CLOSE_GRACE_MS)
      await closed
      clearTimeout(timer)
    }
  }
}
