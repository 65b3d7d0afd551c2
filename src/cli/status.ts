import { Command } from 'commander'
import { callApi, expectOk } from './client.js'
import { withApiOptions, type ApiTarget } from './options.js'
import { exitWith } from './errors.js'

interface Status {
  id: string, http: string, listen: string[], peers: string[], counters: number, uptimeSec: number
  members: Array<{ id: string, self: boolean, connected: boolean, retired: boolean, lastSeen: string | null, addrs: string[] }>
}

export function statusCommand (): Command {
  return withApiOptions(new Command('status')
    .description('show node id, peers, members and counters of a running node')
    .option('--json', 'print the raw JSON'))
    .action(async (o: { json?: boolean, api: string } & ApiTarget) => {
      try {
        const reply = expectOk(await callApi(o, 'GET', 'status'))
        if (o.json === true) {
          process.stdout.write(`${reply.text}\n`)
          return
        }
        const s = JSON.parse(reply.text) as Status
        const lines = [
          `node      ${s.id}`,
          `http      ${s.http}`,
          `listen    ${s.listen.join(' ')}`,
          `uptime    ${s.uptimeSec}s`,
          `counters  ${s.counters}`,
          `peers     ${s.peers.length} connected`,
          `members   ${s.members.length}`,
          ...s.members.map(m => `  ${m.id}  ${m.self ? 'self' : m.connected ? 'connected' : 'disconnected'}${m.retired ? ' (retired)' : ''}  last seen ${m.lastSeen ?? 'never'}  ${m.addrs.join(' ')}`)
        ]
        process.stdout.write(lines.join('\n') + '\n')
      } catch (err) {
        exitWith(err)
      }
    })
}
