// The journal of own writes (src/store/journal.ts): what a killed process
// acknowledged is there after it, a torn tail is ignored, a clean close
// leaves nothing to replay.
import { strict as assert } from 'node:assert'
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, statfsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { crc32 } from 'node:zlib'
import { Store, type PlacedEntry } from '../../src/store/store.js'
import { readRecords, Journal } from '../../src/store/journal.js'
import { Level } from 'level'
import { counterKind } from '../../src/crdt/gcounter.js'

const ce = (key: string, sub: string, value: bigint): PlacedEntry => ({ ds: 'c', key, sub, value, leaf: counterKind.leafOf(key, sub) })
const storeModule = resolve('dist/src/store/store.js')

/**
 * A child process that acknowledges `n` durable writes of counter "hits"
 * (1..n), then dies by SIGKILL; with `foldedFirst`, the first that many
 * writes have had time to fold into LevelDB before the rest.
 */
function writeAndDie (dir: string, n: number, foldedFirst = 0): void {
  const script = `
    const { Store } = await import(${JSON.stringify(storeModule)})
    const { counterKind } = await import(${JSON.stringify(resolve('dist/src/crdt/gcounter.js'))})
    const s = await Store.open(${JSON.stringify(dir)})
    const leaf = counterKind.leafOf('hits', 'r')
    for (let i = 1; i <= ${n}; i++) {
      await s.writeDurable([{ ds: 'c', key: 'hits', sub: 'r', value: BigInt(i), leaf }, { ds: 'c', key: 'k' + i, sub: 'r', value: 1n, leaf: counterKind.leafOf('k' + i, 'r') }])
      if (i === ${foldedFirst}) await new Promise(resolve => setTimeout(resolve, 1200))
    }
    process.stdout.write('acked\\n')
    process.kill(process.pid, 'SIGKILL')`
  let out = ''
  try {
    out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  } catch (err: any) {
    out = String(err.stdout ?? '')
    assert.equal(err.signal, 'SIGKILL', String(err.stderr))
  }
  assert.equal(out, 'acked\n')
}

/** Open the store in `dir`, run `fn` on it, and close it whatever happens. */
async function withStore (dir: string, fn: (s: Store) => Promise<void>): Promise<void> {
  const s = await Store.open(dir)
  try {
    await fn(s)
  } finally {
    await s.close()
  }
}

async function values (s: Store): Promise<Map<string, bigint>> {
  const m = new Map<string, bigint>()
  for await (const chunk of s.entries()) for (const e of chunk) m.set(e.key, e.value)
  return m
}

/** The journal files in a data dir (not the spare of zeros that a journal makes ahead). */
function logs (dir: string): string[] {
  return readdirSync(join(dir, 'journal')).filter(n => n.endsWith('.log'))
}

describe('Store journal', function () {
  this.timeout(30000)
  let dir: string
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'countd-journal-')) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  it('every write acknowledged before a SIGKILL is there after it; the replayed files are gone', async () => {
    writeAndDie(dir, 300)
    const left = logs(dir)
    assert.ok(left.length > 0, 'a killed process leaves its journal')
    await withStore(dir, async s => {
      const v = await values(s)
      assert.equal(v.get('hits'), 300n)
      for (let i = 1; i <= 300; i++) assert.equal(v.get(`k${i}`), 1n)
      // The new journal's files only (it may have moved on to its spare already: two).
      assert.ok(logs(dir).every(n => n > left[left.length - 1]), `only new journal files are left: ${logs(dir).join(', ')} after ${left.join(', ')}`)
    })
    assert.deepEqual(logs(dir), [], 'a clean close leaves nothing to replay')
  })

  it('after a SIGKILL only the records after the last fold are replayed; every acknowledged write is there', async () => {
    writeAndDie(dir, 30, 20)
    const raw = new Level<string, string>(dir)
    await raw.open()
    const folded = await raw.get('meta/folded')
    await raw.close()
    assert.match(folded ?? '', /^\d+:\d+$/, 'the folds recorded how far they reached')
    const { journal, records } = Journal.open(join(dir, 'journal'), async () => {}, { seq: Number(folded?.split(':')[0]), end: Number(folded?.split(':')[1]) })
    await journal.close()
    rmSync(join(dir, 'journal', logs(dir).at(-1) as string)) // the empty file this open made
    assert.equal(records.length, 10, 'the 10 writes after the fold')
    await withStore(dir, async s => {
      const v = await values(s)
      assert.equal(v.get('hits'), 30n)
      for (let i = 1; i <= 30; i++) assert.equal(v.get(`k${i}`), 1n)
    })
    await withStore(dir, async again => { // a clean close, then a new journal from file 0: nothing skipped wrongly
      await again.writeDurable([ce('hits', 'r', 31n)])
    })
    await withStore(dir, async third => {
      assert.equal((await values(third)).get('hits'), 31n)
    })
  })

  it('a torn record at the end (a write that never completed) is ignored, the records before it are kept', async () => {
    writeAndDie(dir, 20)
    const [file] = logs(dir)
    appendFileSync(join(dir, 'journal', file), Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 0x5b, 0x22]))
    await withStore(dir, async s => {
      assert.equal((await values(s)).get('hits'), 20n)
      await s.writeDurable([ce('hits', 'r', 21n)])
    })
    await withStore(dir, async again => {
      assert.equal((await values(again)).get('hits'), 21n)
    })
  })

  it('full journal files go once folded (oldest first); what they held survives a restart', async () => {
    await withStore(dir, async s => {
      // ~24 MiB of group commits: more than one 16 MiB file.
      for (let i = 0; i < 48; i++) await s.writeDurable([ce('hits', 'r', BigInt(i + 1))], [], [['big', `${i}:${'x'.repeat(512 * 1024)}`]])
      const deadline = Date.now() + 20000
      while (logs(dir).length > 1 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
      assert.equal(logs(dir).length, 1, 'the sealed file was retired')
    })
    await withStore(dir, async again => {
      assert.equal((await values(again)).get('hits'), 48n)
      assert.ok((await again.meta('big'))?.startsWith('47:'))
    })
  })

  it('a quiet store lets its folded journal file go: nothing is left to replay, nothing is lost', async function () {
    const fs = statfsSync(tmpdir())
    if (fs.bavail * fs.bsize < 300 << 20) this.skip() // the checkpoint moves onto a spare, made only with room to spare
    const records = (): number => logs(dir).reduce((n, f) => n + readRecords(readFileSync(join(dir, 'journal', f))).length, 0)
    await withStore(dir, async s => {
      // 5 MiB of group commits: past the 4 MiB a checkpoint waits for.
      for (let i = 0; i < 10; i++) await s.writeDurable([ce('hits', 'r', BigInt(i + 1))], [], [['big', `${i}:${'x'.repeat(512 * 1024)}`]])
      s.checkpointWhenQuiet(0) // the folds have not landed yet: nothing happens
      assert.equal(records(), 10)
      for (const deadline = Date.now() + 10000; records() > 0 && Date.now() < deadline;) {
        await new Promise(resolve => setTimeout(resolve, 100))
        s.checkpointWhenQuiet(0)
      }
      assert.equal(records(), 0, 'the folded file went')
      await s.writeDurable([ce('hits', 'r', 11n)])
      assert.equal(records(), 1, 'new writes go to the next file')
    })
    await withStore(dir, async again => {
      assert.equal((await values(again)).get('hits'), 11n)
      assert.ok((await again.meta('big'))?.startsWith('9:'))
    })
  })

  it('records written in place over a spare file of zeros read back exactly after a crash', async function () {
    const fs = statfsSync(tmpdir())
    if (fs.bavail * fs.bsize < 300 << 20) this.skip() // spares are made only with room to spare
    const jdir = join(dir, 'journal')
    const first = Journal.open(jdir, async () => {}).journal
    const inPlace = (): boolean => logs(dir).length === 1 && statSync(join(jdir, logs(dir)[0])).size === 16 << 20
    for (const deadline = Date.now() + 10000; !inPlace() && Date.now() < deadline;) await new Promise(resolve => setTimeout(resolve, 20))
    assert.ok(inPlace(), 'the journal moved to a file of zeros')
    const written = Array.from({ length: 200 }, (_, i) => [`k${i}`, i % 7 === 0 ? null : 'v'.repeat(i)])
    for (const r of written) await first.append(r)
    // No close: what kill -9 leaves. The zeros after the last record end the file.
    const { journal, records } = Journal.open(jdir, async () => {})
    try {
      assert.deepEqual(records, written)
    } finally {
      await first.close()
      await journal.close()
    }
  })

  it('readRecords stops at the first damaged record', () => {
    const frame = (payload: string, crcFix = 0): Buffer => {
      const p = Buffer.from(payload)
      const h = Buffer.alloc(8)
      h.writeUInt32LE(p.length, 0)
      h.writeUInt32LE((crc32(p) + crcFix) >>> 0, 4)
      return Buffer.concat([h, p])
    }
    const good = Buffer.concat([frame('["a","1"]'), frame('["b",null]')])
    assert.deepEqual(readRecords(good), [['a', '1'], ['b', null]])
    assert.deepEqual(readRecords(Buffer.concat([good, frame('["c","2"]', 1), frame('["d","3"]')])), [['a', '1'], ['b', null]])
    assert.deepEqual(readRecords(Buffer.concat([good, frame('["c","2"]').subarray(0, 12)])), [['a', '1'], ['b', null]])
    assert.deepEqual(readRecords(Buffer.concat([good, Buffer.alloc(4096)])), [['a', '1'], ['b', null]])
  })
})
