import { Command } from 'commander'
import { callApi, expectOk } from './client.js'
import { withApiOptions, type ApiTarget } from './options.js'
import { exitWith } from './errors.js'

interface MemberView { id: string, self: boolean, connected: boolean, retired: boolean, lastSeen: string | null, addrs: string[], contribution: number | string }

export function membersCommand (): Command {
  return withApiOptions(new Command('members')
    .description('list members: id, addresses, connected?, last seen, contribution')
    .option('--json', 'print the raw JSON'))
    .action(async (o: { json?: boolean, api: string } & ApiTarget) => {
      try {
        // Every page; big contributions parsed exactly (raw digits kept).
        const members: MemberView[] = []
        let after: string | null = null
        do {
          const text = expectOk(await callApi(o, 'GET', `members?limit=10000${after !== null ? `&after=${encodeURIComponent(after)}` : ''}`)).text
          if (o.json === true) process.stdout.write(`${text}\n`)
          const page = JSON.parse(text.replace(/"contribution":(\d+)/g, '"contribution":"$1"')) as { members: MemberView[], next: string | null }
          members.push(...page.members)
          after = page.next
        } while (after !== null)
        if (o.json === true) return
        const rows = members.map(m => [
          m.id,
          m.self ? 'self' : m.retired ? 'retired' : m.connected ? 'connected' : 'disconnected',
          m.lastSeen ?? 'never',
          String(m.contribution),
          m.addrs.join(',')
        ])
        const head = ['ID', 'STATE', 'LAST SEEN', 'CONTRIBUTION', 'ADDRESSES']
        const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
        for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n')
      } catch (err) {
        exitWith(err)
      }
    })
}

export function forgetCommand (): Command {
  return withApiOptions(new Command('forget')
    .description('retire a member that is gone for good (its increments stay counted)')
    .argument('<id>', 'member (replica) id'))
    .action(async (id: string, o: { api: string } & ApiTarget) => {
      try {
        expectOk(await callApi(o, 'DELETE', `members/${encodeURIComponent(id)}`))
        process.stdout.write(`retired ${id}\n`)
      } catch (err) {
        exitWith(err)
      }
    })
}
