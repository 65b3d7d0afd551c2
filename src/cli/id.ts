// countd id [-n N]: N cluster-unique IDs, one a line (SPEC §6).
import { Command, Option } from 'commander'
import { callApi, expectOk } from './client.js'
import { withApiOptions, type ApiTarget } from './options.js'
import { CliError, exitWith } from './errors.js'

/** IDs per request (the server's limit). */
const CHUNK = 10000

export function idCommand (): Command {
  return withApiOptions(new Command('id')
    .description('print N cluster-unique, time-ordered 64-bit IDs, one a line')
    .addOption(new Option('-n, --count <n>', 'how many').default('1')))
    .action(async (o: { count: string } & ApiTarget) => {
      try {
        if (!/^[0-9]{1,15}$/.test(o.count) || Number(o.count) < 1) throw new CliError('-n must be a positive integer', 2)
        let left = Number(o.count)
        while (left > 0) {
          const n = Math.min(left, CHUNK)
          const reply = expectOk(await callApi(o, 'GET', `ids?count=${n}`))
          const { ids } = JSON.parse(reply.text) as { ids: string[] }
          if (!process.stdout.write(ids.join('\n') + '\n')) await new Promise(resolve => process.stdout.once('drain', resolve))
          left -= ids.length
        }
      } catch (err) {
        exitWith(err)
      }
    })
}
