import { Command, Option } from 'commander'
import { callApi, expectOk } from './client.js'
import { withApiOptions, type ApiTarget } from './options.js'
import { CliError, exitWith } from './errors.js'
import { isValidName, parseIncrement } from '../validate.js'

export function incCommand (): Command {
  return withApiOptions(new Command('inc')
    .description('increment a counter; prints its new value on that node')
    .argument('<name>', 'counter name')
    .addOption(new Option('--by <n>', 'amount, 1..2^53-1').default('1')))
    .action(async (name: string, o: { by: string, api: string } & ApiTarget) => {
      try {
        if (!isValidName(name)) throw new CliError('counter name must be 1-200 characters of A-Z a-z 0-9 . _ ~ -', 2)
        if (parseIncrement(o.by) === undefined) throw new CliError('--by must be an integer between 1 and 9007199254740991', 2)
        const reply = expectOk(await callApi(o, 'POST', `counter/${name}`, o.by))
        process.stdout.write(`${reply.text}\n`)
      } catch (err) {
        exitWith(err)
      }
    })
}
