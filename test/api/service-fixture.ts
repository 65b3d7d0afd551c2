// The real CountdService (src/service.ts) over a one-node replica on a real
// Store (LevelDB, group commit, fsync) and a real ID agent, for front-end
// tests. The only stand-in is the network: a one-node cluster has no member
// to read, and `unreachable` makes consistent reads fail as if one member
// could not be reached.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Store } from '../../src/store/store.js'
import { Replica } from '../../src/replica.js'
import { ReplicaService } from '../../src/service.js'
import { IdAgent } from '../../src/ids/agent.js'

export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

export class FixtureService extends ReplicaService {
  /** When set, consistent reads fail as if this member could not be reached. */
  unreachable: string | undefined

  private constructor (readonly replica: Replica, private readonly store: Store, private readonly dir: string, private readonly agent: IdAgent) {
    super(replica, {
      consistentRead: async () => this.unreachable !== undefined ? [this.unreachable] : [],
      consistentSync: async () => this.unreachable !== undefined ? [this.unreachable] : []
    }, agent)
  }

  static async open (): Promise<FixtureService> {
    const dir = mkdtempSync(join(tmpdir(), 'countd-proto-'))
    const store = await Store.open(dir)
    const replica = new Replica('12D3KooWFixtureReplicaAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', store)
    await replica.load()
    const agent = new IdAgent(replica, { clock: Date.now, log: quietLog })
    await agent.start()
    // IDs are refused (UNAVAILABLE / 503) until the node's slot is confirmed
    // (SPEC §6); tests of the front ends start once it is.
    for (const end = Date.now() + 10000; agent.slot === undefined && Date.now() < end;) await new Promise(resolve => setTimeout(resolve, 20))
    return new FixtureService(replica, store, dir, agent)
  }

  async close (): Promise<void> {
    this.agent.stop()
    await this.store.close()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
