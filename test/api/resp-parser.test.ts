// The Redis request parser (src/api/resp/parser.ts): any split of a stream of
// valid commands into chunks gives the same commands; limits are refused.
import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { RequestParser, ProtocolError, splitArgs } from '../../src/api/resp/parser.js'

function frame (args: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap(a => [Buffer.from(`$${a.length}\r\n`), a, Buffer.from('\r\n')])])
}

function drain (p: RequestParser): Buffer[][] {
  const out: Buffer[][] = []
  for (let c = p.next(); c !== undefined; c = p.next()) out.push(c)
  return out
}

describe('RESP request parser', () => {
  it('any chunking of valid multibulk commands yields the same commands, in order', () => {
    const arg = fc.uint8Array({ maxLength: 300 }).map(a => Buffer.from(a))
    fc.assert(fc.property(fc.array(fc.array(arg, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }), (cmds, cuts) => {
      const stream = Buffer.concat(cmds.map(frame))
      const p = new RequestParser(1 << 20)
      const got: Buffer[][] = []
      for (let at = 0, k = 0; at < stream.length; k++) {
        const n = cuts[k % cuts.length]
        p.feed(stream.subarray(at, at + n))
        at += n
        got.push(...drain(p))
      }
      assert.deepEqual(got.map(c => c.map(a => a.toString('hex'))), cmds.map(c => c.map(a => a.toString('hex'))))
      assert.equal(p.pending, 0)
    }))
  })

  it('a large bulk split into many chunks arrives whole', () => {
    const big = Buffer.alloc(3 << 20, 7)
    const stream = frame([Buffer.from('SET'), big])
    const p = new RequestParser(4 << 20)
    for (let at = 0; at < stream.length; at += 65536) p.feed(stream.subarray(at, at + 65536))
    const [cmd] = drain(p)
    assert.equal(cmd[1].length, big.length)
  })

  it('a command of 400,000 one-byte arguments in 1,460-byte chunks costs what its bytes do (no re-parse per chunk)', () => {
    const args = Array.from({ length: 400000 }, () => Buffer.from('x'))
    const stream = frame([Buffer.from('MGET'), ...args])
    const p = new RequestParser(1 << 20)
    let got: Buffer[][] = []
    for (let at = 0; at < stream.length; at += 1460) {
      p.feed(stream.subarray(at, at + 1460))
      got = got.concat(drain(p))
    }
    assert.equal(got.length, 1)
    assert.equal(got[0].length, 400001) // (re-parsing per chunk took minutes here: mocha's timeout)
  })

  it('refuses lengths Redis refuses', () => {
    for (const bad of ['*1\r\n$abc\r\n', '*1\r\n$-1\r\n', '*1\r\n$2000\r\n', '*q\r\n', '*1\r\n:5\r\n', '*1\r\n$01\r\n', '*+1\r\n', `*1\r\n$2000\r\n${'x'.repeat(2000)}\r\n`, '*1\r\n$00\r\n\r\n']) {
      const p = new RequestParser(1000)
      p.feed(Buffer.from(bad))
      assert.throws(() => drain(p), ProtocolError, bad)
    }
  })

  it('splits inline arguments as Redis does', () => {
    const words = (s: string): string[] | undefined => splitArgs(Buffer.from(s))?.map(b => b.toString('latin1'))
    assert.deepEqual(words('  SET  a   b '), ['SET', 'a', 'b'])
    assert.deepEqual(words('ECHO "a b" \'c d\' ""'), ['ECHO', 'a b', 'c d', ''])
    assert.deepEqual(words('ECHO "\\x41\\t\\"" \'it\\\'s\''), ['ECHO', 'A\t"', "it's"])
    assert.equal(words('ECHO "abc'), undefined)
    assert.equal(words('ECHO "a"b'), undefined)
    assert.deepEqual(words(''), [])
  })
})
