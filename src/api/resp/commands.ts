// The Redis commands countd answers (SPEC §7) and the refusals for the rest.
// Each handler returns an encoded reply or a promise of one, and throws
// (or rejects) for errors: RespError for protocol-level refusals, the
// CountdError family (src/errors.ts) for what the service refuses.
import type { CountdService } from '../../service.js'
import { BadInputError, CountdError } from '../../errors.js'
import { OK, NIL, EMPTY_ARRAY, integer, bulk, bulkBytes, array, type Reply } from './reply.js'
import { checkName, checkRedisKey, checkIncrement, checkItemId, utf8 } from './input.js'
import { isValidItemId, MAX_ITEMS } from '../../validate.js'

/** A refusal with a Redis error word ("ERR", "NOAUTH", ...) and metrics outcome. */
export class RespError extends Error {
  constructor (readonly word: string, message: string, readonly outcome = 'refused') {
    super(message)
  }
}

export const err = (message: string, outcome?: string): RespError => new RespError('ERR', message, outcome)

/** Per-connection state the commands read and change. */
export interface Session {
  readonly id: number
  authenticated: boolean
  name: string | null
}

export interface CommandContext {
  service: CountdService
  /** Checks a password against the API token; undefined when no token is set. */
  checkToken?: (given: string) => boolean
  consistentTimeoutMs: number
}

/** The Redis version whose protocol countd speaks (HELLO, INFO); clients gate features on it. */
export const REDIS_COMPAT_VERSION = '7.2.0'

export interface Command {
  /** Redis arity: N = exactly N words (with the name), -N = at least N. */
  arity: number
  /** Allowed before AUTH (Redis' no-auth commands). */
  noAuth?: boolean
  /** Reads local state: waits for this connection's earlier writes. */
  read?: boolean
  run: (args: Buffer[], session: Session, ctx: CommandContext) => Reply | Promise<Reply>
  /**
   * For increments: the (name, by) to add, checked (throws on bad input).
   * The connection hands the increments of one read to the service in one
   * call (one write, one promise for the lot: a pipeline of 16 INCRs costs
   * one trip through the replica, not 16); run() is the same for one.
   */
  increment?: (args: Buffer[]) => [string, bigint]
}

const str = (b: Buffer): string => b.toString('latin1')
const text = (b: Buffer): string => b.toString('utf8')
const MAX_I64 = (1n << 63n) - 1n

function parseRedisInt (b: Buffer): bigint {
  const s = str(b)
  if (!/^-?[0-9]{1,19}$/.test(s) || BigInt(s) > MAX_I64 || BigInt(s) < -MAX_I64 - 1n) throw err('value is not an integer or out of range')
  return BigInt(s)
}

/** GET on a counter never incremented anywhere this replica knows is nil, as in Redis. */
function counterReply (v: bigint): string {
  return v === 0n ? NIL : bulk(v.toString())
}

function authenticate (session: Session, ctx: CommandContext, user: string, pass: string): void {
  if (ctx.checkToken === undefined) {
    throw err('AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?')
  }
  if (user !== 'default' || !ctx.checkToken(pass)) {
    throw new RespError('WRONGPASS', 'invalid username-password pair or user is disabled.', 'auth')
  }
  session.authenticated = true
}

function helloReply (session: Session): string {
  return array([
    bulk('server'), bulk('countd'),
    bulk('version'), bulk(REDIS_COMPAT_VERSION),
    bulk('proto'), integer(2),
    bulk('id'), integer(session.id),
    bulk('mode'), bulk('standalone'),
    bulk('role'), bulk('master'),
    bulk('modules'), EMPTY_ARRAY
  ])
}

function incrementCommand (arity: number, increment: (args: Buffer[]) => [string, bigint]): Command {
  return {
    arity,
    increment,
    run: async (args, _session, ctx) => integer(await ctx.service.increment(...increment(args)))
  }
}

export const commands: Record<string, Command> = {
  ping: {
    arity: -1,
    run: args => {
      if (args.length > 2) throw err("wrong number of arguments for 'ping' command")
      return args.length === 2 ? bulkBytes(args[1]) : '+PONG\r\n'
    }
  },
  echo: { arity: 2, run: args => bulkBytes(args[1]) },
  quit: { arity: -1, noAuth: true, run: () => OK },
  select: {
    arity: 2,
    run: args => {
      if (parseRedisInt(args[1]) !== 0n) throw err('DB index is out of range (countd has only database 0)')
      return OK
    }
  },
  auth: {
    arity: -2,
    noAuth: true,
    run: (args, session, ctx) => {
      if (args.length > 3) throw new RespError('ERR', 'syntax error')
      const [user, pass] = args.length === 3 ? [text(args[1]), text(args[2])] : ['default', text(args[1])]
      authenticate(session, ctx, user, pass)
      return OK
    }
  },
  hello: {
    arity: -1,
    noAuth: true,
    run: (args, session, ctx) => {
      if (args.length >= 2) {
        const v = str(args[1])
        if (!/^[0-9]{1,9}$/.test(v)) throw err('Protocol version is not an integer or out of range')
        // RESP2 only: RESP3 clients (ioredis, node-redis) fall back on NOPROTO.
        if (v !== '2') throw new RespError('NOPROTO', 'sorry, this protocol version is not supported.')
      }
      let name: string | undefined
      for (let i = 2; i < args.length; i++) {
        const opt = str(args[i]).toLowerCase()
        if (opt === 'auth' && i + 2 < args.length) {
          authenticate(session, ctx, text(args[i + 1]), text(args[i + 2]))
          i += 2
        } else if (opt === 'setname' && i + 1 < args.length) {
          name = text(args[++i])
        } else {
          throw err(`Syntax error in HELLO option '${str(args[i])}'`)
        }
      }
      if (!session.authenticated) {
        throw new RespError('NOAUTH', 'HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time', 'auth')
      }
      if (name !== undefined) session.name = name
      return helloReply(session)
    }
  },
  client: {
    arity: -2,
    run: (args, session) => {
      const sub = str(args[1]).toLowerCase()
      if (sub === 'setname' && args.length === 3) {
        const name = text(args[2])
        if (/[\s]/.test(name)) throw err('Client names cannot contain spaces, newlines or special characters.')
        session.name = name === '' ? null : name
        return OK
      }
      if (sub === 'getname' && args.length === 2) return session.name === null ? NIL : bulk(session.name)
      if (sub === 'setinfo' && args.length === 4) {
        // As Redis 7.2: only the two attributes clients send, and no spaces in the value.
        const attr = str(args[2]).toLowerCase()
        if (attr !== 'lib-name' && attr !== 'lib-ver') throw err(`Unrecognized option '${str(args[2]).slice(0, 128)}'`)
        if (/[\s]/.test(text(args[3]))) throw err(`${attr} cannot contain spaces, newlines or special characters.`)
        return OK
      }
      if (sub === 'id' && args.length === 2) return integer(session.id)
      if (['setname', 'getname', 'setinfo', 'id'].includes(sub)) throw err(`wrong number of arguments for 'client|${sub}' command`)
      throw err(`unknown subcommand '${str(args[1]).slice(0, 128)}'. Try CLIENT HELP.`)
    }
  },
  // Not in SPEC §7's list, but ioredis' ready check sends INFO and refuses
  // a server that fails it; answer the fields clients look at.
  info: {
    arity: -1,
    run: () => bulk(`# Server\r\nredis_version:${REDIS_COMPAT_VERSION}\r\nredis_mode:standalone\r\nserver_name:countd\r\nloading:0\r\n`)
  },
  incr: incrementCommand(2, args => [checkRedisKey(str(args[1])), 1n]),
  incrby: incrementCommand(3, args => [checkRedisKey(str(args[1])), checkIncrement(str(args[2]))]),
  get: {
    arity: 2,
    read: true,
    run: (args, _session, ctx) => counterReply(ctx.service.value(checkRedisKey(str(args[1]))))
  },
  mget: {
    arity: -2,
    read: true,
    run: (args, _session, ctx) => {
      if (args.length - 1 > MAX_ITEMS) throw new BadInputError(`at most ${MAX_ITEMS} names per MGET`)
      const names = args.slice(1).map(a => checkRedisKey(str(a)))
      return array(names.map(n => counterReply(ctx.service.value(n))))
    }
  },
  sadd: {
    arity: -3,
    run: async (args, _session, ctx) => {
      if (args.length - 2 > MAX_ITEMS) throw new BadInputError(`at most ${MAX_ITEMS} members per SADD`)
      const tenant = checkName(str(args[1]), 'tenant')
      const items = args.slice(2).map(a => ({ tenant, id: checkItemId(utf8(a)) }))
      return integer((await ctx.service.addItems(items)).added)
    }
  },
  scard: {
    arity: 2,
    read: true,
    run: (args, _session, ctx) => integer(ctx.service.itemCount(checkName(str(args[1]), 'tenant')))
  },
  sismember: {
    arity: 3,
    read: true,
    run: async (args, _session, ctx) => {
      const tenant = checkName(str(args[1]), 'tenant')
      // An id that breaks the rule can never have been added.
      let id: string
      try { id = utf8(args[2]) } catch { return integer(0) }
      if (!isValidItemId(id)) return integer(0)
      return integer(await ctx.service.hasItem(tenant, id) ? 1 : 0)
    }
  },
  'countd.consistent': {
    // COUNTD.CONSISTENT name [timeout-seconds]
    arity: -2,
    read: true,
    run: async (args, _session, ctx) => {
      if (args.length > 3) throw err("wrong number of arguments for 'countd.consistent' command")
      const name = checkRedisKey(str(args[1]))
      let timeoutMs = ctx.consistentTimeoutMs
      if (args.length === 3) {
        const sec = Number(str(args[2]))
        if (!/^[0-9]+(\.[0-9]+)?$/.test(str(args[2])) || sec <= 0 || sec > 300) throw new BadInputError('timeout must be a number of seconds, 0 < timeout <= 300')
        timeoutMs = Math.round(sec * 1000)
      }
      return integer(await ctx.service.consistentValue(name, timeoutMs))
    }
  }
}

/** Redis commands that would shrink or overwrite state: refused with why. */
const SHRINKING: Record<string, string> = {
  decr: 'counters only grow', decrby: 'counters only grow', incrbyfloat: 'counters are integers that only grow',
  set: 'counters only grow (use INCRBY)', setnx: 'counters only grow (use INCRBY)', setex: 'counters only grow and never expire', psetex: 'counters only grow and never expire',
  getset: 'counters only grow', getdel: 'counters and sets are never deleted', getex: 'counters never expire', mset: 'counters only grow (use INCRBY)', msetnx: 'counters only grow (use INCRBY)',
  append: 'counters are integers', setrange: 'counters are integers', del: 'counters and sets are never deleted', unlink: 'counters and sets are never deleted',
  expire: 'counters and sets never expire', pexpire: 'counters and sets never expire', expireat: 'counters and sets never expire', pexpireat: 'counters and sets never expire',
  rename: 'names are permanent', renamenx: 'names are permanent', move: 'countd has only database 0', copy: 'names are permanent',
  flushdb: 'counters and sets are never deleted', flushall: 'counters and sets are never deleted', swapdb: 'countd has only database 0',
  srem: 'sets only grow', spop: 'sets only grow', smove: 'sets only grow'
}

export function refusal (name: string, args: Buffer[]): RespError {
  const why = SHRINKING[name]
  if (why !== undefined) return err(`countd ${why}: ${name.toUpperCase()} is not supported`, 'unsupported')
  const shown = args.slice(1, 4).map(a => `'${str(a).slice(0, 128)}' `).join('')
  return err(`unknown command '${str(args[0]).slice(0, 128)}', with args beginning with: ${shown}`, 'unknown')
}

/** The reply for an error thrown by a command or the service; `outcome` for metrics. */
export function errorOf (e: unknown): { word: string, message: string, outcome: string } {
  if (e instanceof RespError) return { word: e.word, message: e.message, outcome: e.outcome }
  if (e instanceof CountdError) {
    // SPEC §7: every service failure is an -ERR that says why.
    const extra = e.code === 'unreachable' ? ` (bestGuess ${String(e.extra.bestGuess)}, unreachable: ${(e.extra.unreachable as string[] | undefined)?.join(',') ?? ''})` : ''
    return { word: 'ERR', message: `${e.message}${extra}`, outcome: e.code }
  }
  return { word: 'ERR', message: 'internal error', outcome: 'internal' }
}
