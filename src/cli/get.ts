import { Command, Option } from 'commander'
import { callApi, expectOk, unreachableError, checkTimeout } from './client.js'
import { withApiOptions, type ApiTarget } from './options.js'
import { CliError, exitWith } from './errors.js'
import { isValidName } from '../validate.js'

export function getCommand (): Command {
  return withApiOptions(new Command('get')
    .description("print a counter's value (this node's view, or --consistent)")
    .argument('<name>', 'counter name')
    .option('--consistent', 'read every member first (fails if one cannot be reached)')
    .addOption(new Option('--timeout <sec>', 'timeout of a consistent read').env('COUNTD_CONSISTENT_TIMEOUT')))
    .action(async (name: string, o: { consistent?: boolean, timeout?: string, api: string } & ApiTarget) => {
      try {
        if (!isValidName(name)) throw new CliError('counter name must be 1-200 characters of A-Z a-z 0-9 . _ ~ -', 2)
        checkTimeout(o.timeout)
        const path = o.consistent === true
          ? `counter/${name}/consistent_value${o.timeout !== undefined ? `?timeout=${o.timeout}` : ''}`
          : `counter/${name}/value`
        const reply = await callApi(o, 'GET', path, undefined, (Number(o.timeout ?? 5) + 30) * 1000)
        if (reply.status === 503) throw unreachableError(reply)
        process.stdout.write(`${expectOk(reply).text}\n`)
      } catch (err) {
        exitWith(err)
      }
    })
}
