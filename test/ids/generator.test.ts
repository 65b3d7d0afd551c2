import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { IdGenerator, MAX_LEAD_MS } from '../../src/ids/generator.js'
import { decodeId, encodeId, parseId, idTime, ID_EPOCH_MS } from '../../src/ids/snowflake.js'
import { IdsUnavailableError } from '../../src/errors.js'

/** A clock the test moves; sleeping advances it. */
function fakeClock (start: number): { now: () => number, set: (t: number) => void, sleep: (ms: number) => Promise<void> } {
  let t = start
  return { now: () => t, set: v => { t = v }, sleep: async ms => { t += ms } }
}

function gen (clock: ReturnType<typeof fakeClock>, lease = 0, slot = 5): { g: IdGenerator, leases: number[] } {
  const leases: number[] = []
  const g = new IdGenerator(slot, clock.now, lease, async until => { leases.push(until) }, clock.sleep)
  return { g, leases }
}

function increasing (ids: bigint[]): boolean {
  for (let i = 1; i < ids.length; i++) if (ids[i] <= ids[i - 1]) return false
  return true
}

describe('ID layout (SPEC §6)', () => {
  it('encodes and decodes 41 bits of ms, 10 of slot, 12 of sequence', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 41 - 1 }), fc.integer({ min: 0, max: 1023 }), fc.integer({ min: 0, max: 4095 }), (ms, slot, sequence) => {
      const id = encodeId(ms, slot, sequence)
      assert.ok(id >= 0n && id < 2n ** 63n)
      assert.deepEqual(decodeId(id), { ms, slot, sequence })
      assert.equal(parseId(id.toString()), id)
    }))
    assert.equal(idTime(encodeId(1500, 1, 2)), '2026-01-01T00:00:01.500Z')
    for (const bad of ['', '-1', '+5', '1.0', '0x10', ' 5', '9223372036854775808', '01', 'abc']) assert.equal(parseId(bad), undefined, bad)
    assert.equal(parseId('9223372036854775807'), 2n ** 63n - 1n)
  })
})

describe('IdGenerator', () => {
  const T0 = ID_EPOCH_MS + 10_000_000

  it('issues strictly increasing IDs of its slot, 4,096 per ms at most, never more than 1 s ahead', async () => {
    const clock = fakeClock(T0)
    const { g, leases } = gen(clock)
    const ids: bigint[] = []
    for (let i = 0; i < 10; i++) ids.push(...await g.next(10000))
    assert.equal(ids.length, 100000)
    assert.ok(increasing(ids))
    for (const id of ids) {
      const d = decodeId(id)
      assert.equal(d.slot, 5)
      assert.ok(ID_EPOCH_MS + d.ms <= clock.now() + MAX_LEAD_MS)
    }
    assert.ok(leases.length < 50, `${leases.length} lease writes for 100,000 IDs`)
  })

  it('starts above its lease after a restart (kill -9), so nothing repeats', async () => {
    const clock = fakeClock(T0)
    const first = gen(clock)
    const before = await first.g.next(5000)
    const lease = first.leases[first.leases.length - 1]
    // Restart at the same clock (or a clock that went back a little).
    clock.set(T0 - 300)
    const second = gen(clock, lease)
    const after = await second.g.next(5000)
    assert.ok(after[0] > before[before.length - 1])
    assert.ok(increasing(after))
  })

  it('absorbs a clock that went back a little (runs ahead, then waits) and refuses when it went back far', async () => {
    const clock = fakeClock(T0)
    const { g } = gen(clock)
    const a = await g.next(100)
    clock.set(T0 - 1500) // back 1.5 s: up to 1 s ahead is allowed, so wait ~0.5 s
    const b = await g.next(100)
    assert.ok(b[0] > a[a.length - 1])
    assert.ok(clock.now() >= T0 - 1000, 'it waited for the clock')
    clock.set(T0 - 60000) // back a minute: refuse
    await assert.rejects(g.next(1), IdsUnavailableError)
    clock.set(T0 + 10)
    const c = await g.next(1)
    assert.ok(c[0] > b[b.length - 1])
  })

  it('never repeats or goes down whatever the clock does (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: -5000, max: 3000 }), fc.integer({ min: 1, max: 9000 })), { minLength: 1, maxLength: 30 }), async steps => {
      const clock = fakeClock(T0)
      let lease = 0
      let g = new IdGenerator(3, clock.now, lease, async until => { lease = until }, clock.sleep)
      let last = -1n
      for (const [jump, count] of steps) {
        clock.set(clock.now() + jump)
        if (count % 7 === 0) g = new IdGenerator(3, clock.now, lease, async until => { lease = until }, clock.sleep) // a restart
        let ids: bigint[]
        try {
          ids = await g.next(count)
        } catch (err) {
          assert.ok(err instanceof IdsUnavailableError)
          continue
        }
        assert.equal(ids.length, count)
        for (const id of ids) {
          assert.ok(id > last)
          last = id
          assert.ok(ID_EPOCH_MS + decodeId(id).ms <= clock.now() + MAX_LEAD_MS)
        }
      }
    }), { numRuns: 200 })
  })
})
