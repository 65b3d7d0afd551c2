// The Redis-protocol front end (SPEC §7) over real sockets: a real redis-cli
// (Debian's redis-tools), ioredis, and raw TCP for what clients never send.
// Counters go through a real Replica + LevelDB store (test/api/service-fixture.ts).
import { strict as assert } from 'node:assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { connect, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import { startRespServer, type RunningServer } from '../../src/api/resp/server.js'
import { FixtureService, quietLog } from './service-fixture.js'
import { renderMetrics } from '../../src/metrics.js'

const run = promisify(execFile)
const PORT = 23100
const TOKEN_PORT = 23101

async function cli (port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args])
  return stdout.trimEnd()
}

/** Send raw bytes; resolve with everything received until the server closes or `quietMs` pass. */
async function raw (port: number, data: Buffer | string, quietMs = 300): Promise<{ text: string, closed: boolean }> {
  return await new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1')
    let text = ''
    let timer: NodeJS.Timeout
    const finish = (closed: boolean): void => { clearTimeout(timer); s.destroy(); resolve({ text, closed }) }
    const arm = (): void => { clearTimeout(timer); timer = setTimeout(() => { finish(false) }, quietMs) }
    s.on('connect', () => { s.write(data); arm() })
    s.on('data', d => { text += d.toString('latin1'); arm() })
    s.on('end', () => { finish(true) })
    s.on('error', reject)
  })
}

describe('Redis protocol (RESP2)', function () {
  this.timeout(60000)
  let service: FixtureService
  let server: RunningServer
  let redis: Redis

  before(async () => {
    service = await FixtureService.open()
    server = await startRespServer(service, { host: '127.0.0.1', port: PORT, log: quietLog })
    redis = new Redis({ host: '127.0.0.1', port: PORT, lazyConnect: true, maxRetriesPerRequest: 0 })
    await redis.connect()
  })
  after(async () => {
    redis.disconnect()
    await server.close()
    await service.close()
  })

  it('redis-cli: every command of SPEC §7', async () => {
    assert.equal(await cli(PORT, 'PING'), 'PONG')
    assert.equal(await cli(PORT, 'PING', 'hello'), 'hello')
    assert.equal(await cli(PORT, 'ECHO', 'héllo'), 'héllo')
    assert.equal(await cli(PORT, 'SELECT', '0'), 'OK')
    assert.match(await cli(PORT, 'SELECT', '1'), /^ERR DB index is out of range/)
    assert.equal(await cli(PORT, 'CLIENT', 'SETNAME', 'me'), 'OK')
    assert.equal(await cli(PORT, 'CLIENT', 'SETINFO', 'LIB-NAME', 'x'), 'OK')
    assert.equal(await cli(PORT, 'CLIENT', 'SETINFO', 'lib-ver', '1.2.3'), 'OK')
    assert.match(await cli(PORT, 'CLIENT', 'SETINFO', 'bad', 'x'), /^ERR Unrecognized option 'bad'/)
    assert.equal(await cli(PORT, 'INCR', 'cli.hits'), '1')
    assert.equal(await cli(PORT, 'INCRBY', 'cli.hits', '41'), '42')
    assert.equal(await cli(PORT, 'GET', 'cli.hits'), '42')
    assert.equal(await cli(PORT, 'GET', 'cli.never'), '')
    assert.equal(await cli(PORT, '--no-raw', 'MGET', 'cli.hits', 'cli.never'), '1) "42"\n2) (nil)')
    assert.equal(await cli(PORT, 'SADD', 'cli-tenant', 'a', 'b', 'a'), '2')
    assert.equal(await cli(PORT, 'SADD', 'cli-tenant', 'b', 'c'), '1')
    assert.equal(await cli(PORT, 'SCARD', 'cli-tenant'), '3')
    assert.equal(await cli(PORT, 'SISMEMBER', 'cli-tenant', 'c'), '1')
    assert.equal(await cli(PORT, 'SISMEMBER', 'cli-tenant', 'z'), '0')
    assert.equal(await cli(PORT, 'COUNTD.CONSISTENT', 'cli.hits'), '42')
    assert.equal(await cli(PORT, 'QUIT'), 'OK')
    // The durable value is the replica's, not a front-end copy.
    assert.equal(service.value('cli.hits'), 42n)
  })

  it('ioredis: RESP3 HELLO falls back to RESP2, then every command', async () => {
    assert.equal(await redis.ping(), 'PONG')
    assert.equal(await redis.incr('io.hits'), 1)
    assert.equal(await redis.incrby('io.hits', 9007199254740991), 9007199254740992)
    assert.equal(await redis.get('io.hits'), '9007199254740992')
    assert.deepEqual(await redis.mget('io.hits', 'io.never'), ['9007199254740992', null])
    assert.equal(await redis.sadd('io-tenant', 'x', 'y', 'ünïcode'), 3)
    assert.equal(await redis.scard('io-tenant'), 3)
    assert.equal(await redis.sismember('io-tenant', 'ünïcode'), 1)
    // A leading U+FEFF is part of the id (a decoder's default would drop it).
    assert.equal(await redis.sadd('bom-tenant', '\ufeffa', '\ufeff'), 2)
    assert.equal(await redis.sadd('bom-tenant', 'a'), 1)
    assert.equal(await redis.sismember('bom-tenant', '\ufeff'), 1)
    assert.equal(await redis.scard('bom-tenant'), 3)
    // ioredis turns integer replies into JS numbers (exact up to 2^53; use stringNumbers beyond).
    assert.equal(await redis.call('COUNTD.CONSISTENT', 'io.hits'), 9007199254740992)
    await assert.rejects(redis.call('HELLO', '3'), /NOPROTO/)
    const hello = await redis.call('HELLO', '2') as unknown[]
    assert.equal(hello[hello.indexOf('proto') + 1], 2)
  })

  it('counter values past 2^63-1 are bulk strings (RESP integers are signed 64-bit)', async () => {
    const step = 9007199254740991n
    const batch = Array.from({ length: 1100 }, () => ['big', step] as [string, bigint])
    await service.incrementMany(batch) // 1100 * (2^53-1) > 2^63
    const expected = (step * 1101n).toString()
    assert.equal(await cli(PORT, 'INCRBY', 'big', step.toString()), expected)
    assert.equal(await redis.get('big'), expected)
  })

  it('pipelines of 1,000 commands: replies in order, values right, one durable path', async () => {
    const p = redis.pipeline()
    for (let i = 0; i < 1000; i++) {
      if (i % 10 === 9) p.get('pipe.a')
      else p.incrby(i % 2 === 0 ? 'pipe.a' : 'pipe.b', 2)
    }
    const res = await p.exec()
    assert.ok(res !== null)
    let a = 0
    let b = 0
    res.forEach(([e, v], i) => {
      assert.equal(e, null)
      if (i % 10 === 9) assert.equal(v, String(a))
      else if (i % 2 === 0) assert.equal(v, a += 2)
      else assert.equal(v, b += 2)
    })
    assert.equal(service.value('pipe.a'), BigInt(a))
    assert.equal(service.value('pipe.b'), BigInt(b))
    // Increments of one read go to the replica together: each still answers
    // its own value, and a bad one is refused alone.
    const q = redis.pipeline()
    q.incr('pipe.c').incr('pipe.c').incrby('pipe.c', 5).incr('bad name').incrby('pipe.c', 0).incr('pipe.d').incr('pipe.c')
    const got = (await q.exec() ?? []).map(([e, v]) => e === null ? v : 'ERR')
    assert.deepEqual(got, [1, 2, 7, 'ERR', 'ERR', 1, 8])
    assert.equal(service.value('pipe.c'), 8n)
    // redis-cli --pipe: raw protocol from stdin, 1,000 INCRs.
    const cmds = Array.from({ length: 1000 }, () => '*2\r\n$4\r\nINCR\r\n$9\r\npipe.cli1\r\n').join('')
    const child = execFile('redis-cli', ['-p', String(PORT), '--pipe'])
    child.stdin?.end(cmds)
    const out = await new Promise<string>(resolve => { let s = ''; child.stdout?.on('data', d => { s += String(d) }); child.on('close', () => { resolve(s) }) })
    assert.match(out, /errors: 0, replies: 1000/)
    assert.equal(await cli(PORT, 'GET', 'pipe.cli1'), '1000')
  })

  it('redis-benchmark -t incr runs unchanged and every INCR counts', async () => {
    const { stdout } = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(PORT), '-t', 'incr', '-n', '500', '-c', '5', '-q', '--csv'])
    assert.match(stdout, /"INCR"/)
    assert.equal(await cli(PORT, 'GET', 'counter:__rand_int__'), '500')
  })

  it('wrong arity, unknown commands and shrinking writes get -ERR and the connection stays usable', async () => {
    await assert.rejects(redis.call('GET'), /^ReplyError: ERR wrong number of arguments for 'get' command$/)
    await assert.rejects(redis.call('INCRBY', 'x'), /wrong number of arguments for 'incrby'/)
    await assert.rejects(redis.call('PING', 'a', 'b'), /wrong number of arguments for 'ping'/)
    await assert.rejects(redis.call('FOO', 'bar'), /ERR unknown command 'FOO', with args beginning with: 'bar'/)
    await assert.rejects(redis.decr('io.hits'), /ERR countd counters only grow: DECR is not supported/)
    await assert.rejects(redis.set('io.hits', '0'), /counters only grow.*SET is not supported/)
    await assert.rejects(redis.del('io.hits'), /never deleted.*DEL is not supported/)
    await assert.rejects(redis.srem('io-tenant', 'x'), /sets only grow.*SREM/)
    await assert.rejects(redis.incrby('io.hits', 0), /increment must be an integer from 1/)
    await assert.rejects(redis.incrby('io.hits', -5), /increment must be an integer from 1/)
    await assert.rejects(redis.call('INCRBY', 'io.hits', '9007199254740992'), /increment must be/)
    await assert.rejects(redis.call('INCRBY', 'io.hits', '1e3'), /increment must be/)
    // Redis key names may hold ':' (redis-benchmark's INCR uses "counter:<n>"); '/' and spaces never.
    assert.equal(await redis.incr('user:1'), 1)
    await assert.rejects(redis.incr('user/1'), /invalid counter name "user\/1"/)
    await assert.rejects(redis.incr('user 1'), /invalid counter name/)
    await assert.rejects(redis.incr('x'.repeat(201)), /invalid counter name/)
    await assert.rejects(redis.sadd('io-tenant', 'bad\u0001id'), /invalid item id/)
    await assert.rejects(redis.sadd('io-tenant', 'y'.repeat(257)), /invalid item id/)
    await assert.rejects(redis.call('CLIENT', 'KILL', 'x'), /unknown subcommand 'KILL'/)
    // None of it changed state, and the connection still answers.
    assert.equal(await redis.get('io.hits'), '9007199254740992')
    assert.equal(await redis.scard('io-tenant'), 3)
    assert.equal(await redis.ping(), 'PONG')
    const text = await renderMetrics()
    assert.match(text, /^countd_protocol_commands_total\{protocol="resp",command="unknown",outcome="unsupported"\} [1-9]/m)
    assert.match(text, /^countd_protocol_commands_total\{protocol="resp",command="incr",outcome="ok"\} [1-9]/m)
    assert.match(text, /^countd_protocol_command_duration_seconds_count\{protocol="resp"\} [1-9]/m)
  })

  it('COUNTD.CONSISTENT is an error reply when it cannot be consistent', async () => {
    service.unreachable = 'peer-b'
    try {
      await assert.rejects(redis.call('COUNTD.CONSISTENT', 'io.hits', '0.2'), /^ReplyError: ERR could not reach 1 member.*unreachable: peer-b/)
      assert.equal(await redis.get('io.hits'), '9007199254740992') // local reads still work
    } finally {
      service.unreachable = undefined
    }
  })

  it('a malformed frame closes only that connection; inline commands work', async () => {
    const junk = await raw(PORT, Buffer.from([0x2a, 0x32, 0x0d, 0x0a, 0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x99]))
    assert.equal(junk.closed, true)
    assert.match(junk.text, /^-ERR Protocol error/)
    const nested = await raw(PORT, '*1\r\n*1\r\n$4\r\nPING\r\n')
    assert.equal(nested.closed, true)
    assert.match(nested.text, /^-ERR Protocol error: expected '\$', got '\*'/)
    // Replies before the bad frame still go out, in order.
    const before = await raw(PORT, '*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINCR\r\n$9\r\njunk.safe\r\n*1\r\n:5\r\n')
    assert.equal(before.text, '+PONG\r\n:1\r\n-ERR Protocol error: expected \'$\', got \':\'\r\n')
    assert.equal(before.closed, true)
    // Lengths Redis refuses are refused at once, not waited for.
    for (const bad of ['*2\r\n$3\r\nGET\r\n$abc\r\nxyz\r\n', '*1\r\n$999999999999\r\n', '*1\r\n$-5\r\n', '*x\r\n']) {
      const r = await raw(PORT, bad)
      assert.equal(r.closed, true, JSON.stringify(bad))
      assert.match(r.text, /^-ERR Protocol error: invalid (bulk|multibulk) length\r\n$/, JSON.stringify(bad))
    }
    // Inline arguments are quoted as in Redis; unbalanced quotes are a protocol error.
    const quoted = await raw(PORT, 'ECHO "a b"\r\nECHO \'it\\\'s\'\r\nECHO "\\x41\\n"\r\n')
    assert.equal(quoted.text, '$3\r\na b\r\n$4\r\nit\'s\r\n$2\r\nA\n\r\n')
    const unbalanced = await raw(PORT, 'ECHO "abc\r\n')
    assert.equal(unbalanced.text, '-ERR Protocol error: unbalanced quotes in request\r\n')
    assert.equal(unbalanced.closed, true)
    // telnet-style inline commands, as Redis accepts them.
    const inline = await raw(PORT, 'PING\r\nINCRBY junk.safe 4\r\nGET junk.safe\n')
    assert.equal(inline.text, '+PONG\r\n:5\r\n$1\r\n5\r\n')
    assert.equal(inline.closed, false)
    // The server still serves everyone else.
    assert.equal(await redis.ping(), 'PONG')
    assert.equal(await cli(PORT, 'GET', 'junk.safe'), '5')
  })

  it('a client that disconnects mid-pipeline: what was acknowledged is counted, nothing twice', async () => {
    const n = 5000
    const frames = Array.from({ length: n }, () => '*2\r\n$4\r\nINCR\r\n$8\r\ncut.pipe\r\n').join('')
    const acked = await new Promise<number>(resolve => {
      const s = connect(PORT, '127.0.0.1')
      let got = ''
      s.on('connect', () => { s.write(frames.slice(0, frames.length / 2 + 7)) }) // ends inside a frame
      s.on('data', d => {
        got += String(d)
        if (got.length > 0 && !s.destroyed) { s.destroy(); resolve((got.match(/^:\d+\r\n/gm) ?? []).length) }
      })
    })
    assert.ok(acked >= 1)
    // Let the writes already received finish their commit.
    let value = 0n
    for (let i = 0; i < 50; i++) {
      await new Promise(resolve => setTimeout(resolve, 20))
      value = service.value('cut.pipe')
    }
    assert.ok(value >= BigInt(acked), `acked ${acked} but counted ${value}`)
    assert.ok(value <= BigInt(n / 2), `counted ${value}, more than the ${n / 2} complete commands sent`)
    assert.equal(await redis.incr('cut.pipe'), Number(value) + 1)
  })
})

describe('Redis protocol with an API token', function () {
  this.timeout(60000)
  let service: FixtureService
  let server: RunningServer

  before(async () => {
    service = await FixtureService.open()
    server = await startRespServer(service, { host: '127.0.0.1', port: TOKEN_PORT, token: 's3cret', log: quietLog })
  })
  after(async () => {
    await server.close()
    await service.close()
  })

  it('every command but AUTH, HELLO and QUIT needs AUTH', async () => {
    assert.equal(await cli(TOKEN_PORT, 'INCR', 'locked'), 'NOAUTH Authentication required.')
    assert.equal(await cli(TOKEN_PORT, 'PING'), 'NOAUTH Authentication required.')
    assert.equal(service.value('locked'), 0n)
    assert.match(await cli(TOKEN_PORT, 'AUTH', 'wrong'), /^WRONGPASS/)
    assert.match(await cli(TOKEN_PORT, 'HELLO', '2'), /^NOAUTH HELLO must be called/)
    assert.equal(await cli(TOKEN_PORT, '-a', 's3cret', '--no-auth-warning', 'INCR', 'locked'), '1')
    assert.equal(await cli(TOKEN_PORT, '--user', 'default', '--pass', 's3cret', '--no-auth-warning', 'INCR', 'locked'), '2')
    // Only the "default" user exists, as in Redis.
    assert.match(await cli(TOKEN_PORT, '--user', 'bob', '--pass', 's3cret', '--no-auth-warning', 'INCR', 'locked'), /NOAUTH|WRONGPASS/)
    assert.equal(service.value('locked'), 2n)
    assert.match(await cli(TOKEN_PORT, 'HELLO', '2', 'AUTH', 'default', 's3cret'), /^server\ncountd/)
  })

  it('ioredis with a password (RESP3 HELLO AUTH, then AUTH on RESP2)', async () => {
    const ok = new Redis({ host: '127.0.0.1', port: TOKEN_PORT, password: 's3cret', lazyConnect: true, maxRetriesPerRequest: 0 })
    await ok.connect()
    assert.equal(await ok.incr('locked'), 3)
    ok.disconnect()
    const bad = new Redis({ host: '127.0.0.1', port: TOKEN_PORT, password: 'nope', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    bad.on('error', () => {})
    await assert.rejects(bad.connect())
    bad.disconnect()
    assert.equal(service.value('locked'), 3n)
  })

  it('without a token, AUTH is an error like Redis without requirepass', async () => {
    const open = await FixtureService.open()
    const srv = await startRespServer(open, { host: '127.0.0.1', port: TOKEN_PORT + 1, log: quietLog })
    try {
      assert.match(await cli(TOKEN_PORT + 1, 'AUTH', 'x'), /^ERR AUTH <password> called without any password configured/)
      assert.equal(await cli(TOKEN_PORT + 1, 'INCR', 'free'), '1')
    } finally {
      await srv.close()
      await open.close()
    }
  })
})
