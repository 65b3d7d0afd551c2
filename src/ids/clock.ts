// The clock IDs are stamped with. In production it is Date.now(). Test hook
// (documented in the README, read only when the variable is set): with
// COUNTD_TEST_CLOCK_FILE=PATH the clock is Date.now() plus the integer
// milliseconds in that file (re-read at most every 50 ms; a missing or
// garbled file counts as 0), so tests and the chaos harness can jump a
// running node's clock forward and back.
import { readFileSync } from 'node:fs'

export type Clock = () => number

export function systemClock (env: NodeJS.ProcessEnv = process.env): Clock {
  const file = env.COUNTD_TEST_CLOCK_FILE
  if (file === undefined || file === '') return Date.now
  let offset = 0
  let readAt = -Infinity
  return () => {
    const now = Date.now()
    if (now - readAt >= 50 || now < readAt) {
      readAt = now
      try {
        const n = Number(readFileSync(file, 'utf8').trim())
        offset = Number.isSafeInteger(n) ? n : 0
      } catch {
        offset = 0
      }
    }
    return now + offset
  }
}
