// A short chaos run (5 nodes in network namespaces, ~30 s, every nemesis)
// must pass SPEC §4 every time. Needs root and iproute2, as CI has.
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { repoRoot } from '../scripts/cluster.js'
import { netnsAvailable } from '../scripts/chaos/netns.js'

describe('chaos: partitions, kill -9, pauses, wipes, degraded links', function () {
  this.timeout(180000)

  it('5 nodes, 30 s of faults: no lost acks, no invention, monotonic, consistent, converged', async function () {
    if (netnsAvailable() !== undefined) this.skip()
    const out = mkdtempSync(join(tmpdir(), 'countd-chaos-out-'))
    const seed = String(Date.now() % 100000)
    const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>(resolve => {
      const p = spawn(process.execPath, [join(repoRoot, 'dist/scripts/chaos/main.js'), '--nodes', '5', '--seconds', '30', '--seed', seed, '--out', out])
      let stdout = ''
      let stderr = ''
      p.stdout.on('data', d => { stdout += d })
      p.stderr.on('data', d => { stderr += d })
      p.on('exit', code => resolve({ code, stdout, stderr }))
    })
    const verdict = stdout.trim().split('\n').pop() ?? ''
    // Keep history.json and values.svg of a failed run for the post-mortem.
    if (code === 0) rmSync(out, { recursive: true, force: true })
    assert.equal(code, 0, `${verdict}\n${stderr.split('\n').filter(l => l.includes('PROBLEM') || l.includes('error')).join('\n')}`)
    assert.match(verdict, /^PASS nodes=5 .* lost=0 invented=0 /)
  })
})
