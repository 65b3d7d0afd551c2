// --config FILE and SIGHUP against a real process (SPEC §1, §5).
import { strict as assert } from 'node:assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CountdNode, portBlock, waitFor } from '../../scripts/cluster.js'

describe('countd start --config FILE', function () {
  this.timeout(60000)
  const dir = mkdtempSync(join(tmpdir(), 'countd-configfile-'))
  const file = join(dir, 'countd.yaml')
  const lines: string[] = []
  let node: CountdNode
  const status = async (token?: string): Promise<number> =>
    (await fetch(`${node.url}/counter/hup/value`, { headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } })).status

  before(async () => {
    writeFileSync(file, 'api-token: first-token-0123456789\nlog-level: info\nconsistent-timeout: 2\n')
    node = new CountdNode({ name: 'cfg', dataDir: join(dir, 'data'), httpPort: portBlock(1), p2pPort: portBlock(1), args: ['--config', file], onLine: l => lines.push(l) })
    await node.start()
  })
  after(async () => {
    await node?.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  it('takes settings from the file', async () => {
    assert.equal(await status(), 401)
    assert.equal(await status('first-token-0123456789'), 200)
  })

  it('SIGHUP applies a new API token at once: the old one gets 401, the new one 200', async () => {
    writeFileSync(file, 'api-token: second-token-0123456789\nlog-level: info\nconsistent-timeout: 2\nsync-interval-ms: 777\n')
    node.proc!.kill('SIGHUP')
    await waitFor(async () => await status('second-token-0123456789') === 200, 10000)
    assert.equal(await status('first-token-0123456789'), 401)
    assert.ok(lines.some(l => l.includes('take effect only at restart') && l.includes('sync-interval-ms')), 'the sync-interval-ms change is logged as needing a restart')
  })

  it('SIGHUP without --config is logged and ignored (the node keeps running)', async () => {
    const plain = new CountdNode({ name: 'plain', dataDir: join(dir, 'plain'), httpPort: portBlock(1), p2pPort: portBlock(1), onLine: l => lines.push(l) })
    try {
      await plain.start()
      plain.proc!.kill('SIGHUP')
      await waitFor(() => lines.some(l => l.includes('no --config file to re-read')), 10000)
      assert.ok(plain.running)
      assert.equal((await fetch(`${plain.url}/health`)).status, 200)
    } finally {
      await plain.kill('SIGKILL')
    }
  })

  it('SIGHUP with a bad file logs it and keeps the running config', async () => {
    writeFileSync(file, 'api-token: [unclosed\n')
    node.proc!.kill('SIGHUP')
    await waitFor(() => lines.some(l => l.includes('config not reloaded')), 10000)
    assert.ok(node.running)
    assert.equal(await status('second-token-0123456789'), 200)
  })
})
