import { strict as assert } from 'node:assert'
import { resolve } from 'node:path'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildConfig, loadConfig, readConfigFile, reloadConfig, parseHostPort, splitList, UsageError, type StartFlags } from '../src/config.js'

function flags (over: Partial<StartFlags> = {}): StartFlags {
  return {
    dataDir: './countd-data',
    http: '127.0.0.1:7777',
    listen: '/ip4/0.0.0.0/tcp/7778',
    logLevel: 'info',
    consistentTimeout: '5',
    gossipBatchMs: '5',
    syncIntervalMs: '2000',
    ...over
  }
}

describe('config', () => {
  describe('buildConfig', () => {
    it('maps the defaults', () => {
      const c = buildConfig(flags())
      assert.equal(c.dataDir, resolve('./countd-data'))
      assert.equal(c.httpHost, '127.0.0.1')
      assert.equal(c.httpPort, 7777)
      assert.deepEqual(c.listen, ['/ip4/0.0.0.0/tcp/7778'])
      assert.deepEqual(c.peers, [])
      assert.equal(c.logLevel, 'info')
      assert.equal(c.consistentTimeoutSec, 5)
      assert.equal(c.gossipBatchMs, 5)
      assert.equal(c.syncIntervalMs, 2000)
    })

    it('accepts comma lists and repeated flags for --peers and --listen', () => {
      const c = buildConfig(flags({
        peers: ['10.0.0.2:7778,10.0.0.3', ' /ip4/10.0.0.4/tcp/7778 '],
        listen: ['/ip4/0.0.0.0/tcp/7778,/ip6/::/tcp/7778', '/ip4/127.0.0.1/tcp/9000']
      }))
      assert.deepEqual(c.peers, ['10.0.0.2:7778', '10.0.0.3', '/ip4/10.0.0.4/tcp/7778'])
      assert.deepEqual(c.listen, ['/ip4/0.0.0.0/tcp/7778', '/ip6/::/tcp/7778', '/ip4/127.0.0.1/tcp/9000'])
      assert.deepEqual(buildConfig(flags({ peers: 'a:1,b:2' })).peers, ['a:1', 'b:2'])
    })

    it('parses --http host and port, and is case-insensitive for --log-level', () => {
      const c = buildConfig(flags({ http: '0.0.0.0:8080', logLevel: 'DEBUG', allowUnauthenticated: true }))
      assert.equal(c.httpHost, '0.0.0.0')
      assert.equal(c.httpPort, 8080)
      assert.equal(c.logLevel, 'debug')
    })

    for (const http of ['nope', 'host:99999', 'host:', ':x', '127.0.0.1:-1', '127.0.0.1:80:80']) {
      it(`rejects --http ${JSON.stringify(http)} with UsageError`, () => {
        assert.throws(() => buildConfig(flags({ http })), (err: unknown) => {
          assert.ok(err instanceof UsageError, String(err))
          assert.match(err.message, /--http/)
          return true
        })
      })
    }

    for (const listen of ['127.0.0.1:7778', '', ',', ['0.0.0.0:7778'], []] as Array<string | string[]>) {
      it(`rejects --listen ${JSON.stringify(listen)} with UsageError`, () => {
        assert.throws(() => buildConfig(flags({ listen })), UsageError)
      })
    }

    for (const logLevel of ['verbose', '', 'inf0']) {
      it(`rejects --log-level ${JSON.stringify(logLevel)} with UsageError`, () => {
        assert.throws(() => buildConfig(flags({ logLevel })), (err: unknown) => {
          assert.ok(err instanceof UsageError)
          assert.match(err.message, /--log-level/)
          return true
        })
      })
    }

    it('rejects an empty --data-dir', () => {
      assert.throws(() => buildConfig(flags({ dataDir: '  ' })), UsageError)
    })

    for (const consistentTimeout of ['0', '-1', 'abc', '1e3', '301', '']) {
      it(`rejects consistent timeout ${JSON.stringify(consistentTimeout)}`, () => {
        assert.throws(() => buildConfig(flags({ consistentTimeout })), UsageError)
      })
    }

    it('accepts a fractional consistent timeout', () => {
      assert.equal(buildConfig(flags({ consistentTimeout: '0.5' })).consistentTimeoutSec, 0.5)
    })
  })

  describe('safe by default (SPEC §1)', () => {
    const token = { apiToken: 'a-token-of-enough-length' }
    for (const over of [{ http: '0.0.0.0:7777' }, { http: '10.0.0.1:7777' }, { http: '[::]:7777' }, { http: '[::ffff:a00:1]:7777' }, { http: '127.example.com:7777' }, { resp: '0.0.0.0:6379' }, { grpc: '192.168.1.2:50051' }] as Array<Partial<StartFlags>>) {
      it(`refuses ${JSON.stringify(over)} without a token, naming both remedies`, () => {
        assert.throws(() => buildConfig(flags(over)), (err: unknown) => {
          assert.ok(err instanceof UsageError)
          assert.match(err.message, /--api-token/)
          assert.match(err.message, /--allow-unauthenticated/)
          assert.ok(!err.message.includes('\n'))
          return true
        })
        assert.equal(buildConfig(flags({ ...over, ...token })).apiToken, token.apiToken)
        assert.equal(buildConfig(flags({ ...over, allowUnauthenticated: true })).allowUnauthenticated, true)
        assert.equal(buildConfig(flags({ ...over, allowUnauthenticated: '1' })).allowUnauthenticated, true)
      })
    }
    for (const over of [{}, { http: 'localhost:1' }, { http: '[::1]:1' }, { http: '[0:0:0:0:0:0:0:1]:1' }, { http: '[::ffff:7f00:1]:1' }, { http: '[::ffff:127.0.0.1]:1' }, { http: '127.0.0.2:1' }, { resp: '127.0.0.1:6379', grpc: ':50051' }] as Array<Partial<StartFlags>>) {
      it(`starts ${JSON.stringify(over)} (loopback) without a token`, () => {
        assert.equal(buildConfig(flags(over)).apiToken, undefined)
      })
    }
    it('parses --resp, --grpc and --node-slot', () => {
      const c = buildConfig(flags({ resp: '127.0.0.1:6379', grpc: 'localhost:50051', nodeSlot: '1023' }))
      assert.deepEqual(c.resp, { host: '127.0.0.1', port: 6379 })
      assert.deepEqual(c.grpc, { host: 'localhost', port: 50051 })
      assert.equal(c.nodeSlot, 1023)
      assert.equal(buildConfig(flags()).resp, undefined)
      for (const nodeSlot of ['1024', '-1', 'x', '1.5']) assert.throws(() => buildConfig(flags({ nodeSlot })), /--node-slot/)
      assert.throws(() => buildConfig(flags({ resp: 'nope' })), /--resp/)
    })
  })

  describe('--config FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'countd-config-'))
    after(() => { rmSync(dir, { recursive: true, force: true }) })
    let n = 0
    const file = (text: string): string => {
      const f = join(dir, `c${n++}.yaml`)
      writeFileSync(f, text)
      return f
    }

    it('reads YAML and JSON with the flags\' long names; peers as a string or a list', () => {
      assert.deepEqual(readConfigFile(file('data-dir: /tmp/x\npeers: [a:1, b:2]\nlog-level: debug\nconsistent-timeout: 2\n')), { dataDir: '/tmp/x', peers: ['a:1', 'b:2'], logLevel: 'debug', consistentTimeout: '2' })
      assert.deepEqual(readConfigFile(file('{"peers": "a:1,b:2", "allow-unauthenticated": true}')), { peers: 'a:1,b:2', allowUnauthenticated: true })
      assert.deepEqual(readConfigFile(file('')), {})
    })

    it('flags and env win over the file, the file over defaults', () => {
      const f = file('log-level: debug\nconsistent-timeout: 7\nhttp: 127.0.0.1:9999\n')
      const c = loadConfig({ file: f, explicit: { logLevel: 'warn' }, defaults: flags() })
      assert.equal(c.logLevel, 'warn')
      assert.equal(c.consistentTimeoutSec, 7)
      assert.equal(c.httpPort, 9999)
    })

    for (const [text, pattern] of [
      ['nope: 1\n', /unknown key "nope"/],
      ['peers: {a: 1}\n', /"peers"/],
      ['- a\n- b\n', /mapping/],
      ['a: [\n', /not YAML or JSON/],
      ['log-level: loud\n', /--log-level/],
      ['http: 0.0.0.0:1\n', /--allow-unauthenticated/]
    ] as Array<[string, RegExp]>) {
      it(`rejects ${JSON.stringify(text)} with a UsageError`, () => {
        assert.throws(() => loadConfig({ file: file(text), explicit: {}, defaults: flags() }), (err: unknown) => {
          assert.ok(err instanceof UsageError, String(err))
          assert.match(err.message, pattern)
          return true
        })
      })
    }

    it('a missing file is a UsageError naming it', () => {
      assert.throws(() => readConfigFile(join(dir, 'absent.yaml')), /absent\.yaml/)
    })

    it('reloadConfig applies live keys and reports the ones that need a restart', () => {
      const f = file('log-level: info\napi-token: first-token-0123456789\n')
      const running = loadConfig({ file: f, explicit: {}, defaults: flags() })
      writeFileSync(f, 'log-level: debug\napi-token: second-token-0123456789\npeers: [10.0.0.9]\ndata-dir: /elsewhere\nhttp: 127.0.0.1:1234\n')
      const { config, needsRestart } = reloadConfig(f, running)
      assert.equal(config.logLevel, 'debug')
      assert.equal(config.apiToken, 'second-token-0123456789')
      assert.deepEqual(config.peers, ['10.0.0.9'])
      assert.deepEqual(needsRestart, ['data-dir', 'http'])
      assert.equal(config.dataDir, running.dataDir, 'left as running')
      assert.equal(config.httpPort, running.httpPort)
      writeFileSync(f, 'log-level: [\n')
      assert.throws(() => reloadConfig(f, config), UsageError)
    })
  })

  describe('parseHostPort', () => {
    it('parses host:port, IPv6 in brackets and an empty host', () => {
      assert.deepEqual(parseHostPort('127.0.0.1:7777', 'x'), { host: '127.0.0.1', port: 7777 })
      assert.deepEqual(parseHostPort('localhost:0', 'x'), { host: 'localhost', port: 0 })
      assert.deepEqual(parseHostPort('[::1]:8080', 'x'), { host: '::1', port: 8080 })
      assert.deepEqual(parseHostPort(':9000', 'x'), { host: '127.0.0.1', port: 9000 })
      assert.deepEqual(parseHostPort('h:65535', 'x'), { host: 'h', port: 65535 })
    })

    it('throws UsageError naming the flag and the input', () => {
      for (const bad of ['nope', 'host:99999', 'h:65536', '::1:80', 'h:8a', '']) {
        assert.throws(() => parseHostPort(bad, '--http'), (err: unknown) => {
          assert.ok(err instanceof UsageError, `${bad}: ${String(err)}`)
          assert.ok(err.message.includes('--http'))
          assert.ok(err.message.includes(`"${bad}"`))
          return true
        })
      }
    })
  })

  describe('splitList', () => {
    it('handles undefined, single values, commas, repeats and blanks', () => {
      assert.deepEqual(splitList(undefined), [])
      assert.deepEqual(splitList(''), [])
      assert.deepEqual(splitList('a'), ['a'])
      assert.deepEqual(splitList('a, b ,,c,'), ['a', 'b', 'c'])
      assert.deepEqual(splitList(['a,b', 'c', ' ', 'd']), ['a', 'b', 'c', 'd'])
      assert.deepEqual(splitList([]), [])
    })
  })
})
