import { Command } from 'commander'
import { writeFileSync } from 'node:fs'
import { generateKey } from '@libp2p/pnet'
import { CliError, exitWith } from './errors.js'

export function keygenCommand (): Command {
  return new Command('keygen')
    .description('make a swarm key for --swarm-key (a private network: nodes without it cannot connect)')
    .option('--out <file>', 'write it to this file (mode 600) instead of stdout')
    .action((o: { out?: string }) => {
      try {
        const key = new Uint8Array(95)
        generateKey(key)
        if (o.out === undefined) {
          process.stdout.write(key)
          return
        }
        try {
          writeFileSync(o.out, key, { mode: 0o600, flag: 'wx' })
        } catch (err: any) {
          throw new CliError(err.code === 'EEXIST' ? `${o.out} exists; not overwriting a swarm key` : `cannot write ${o.out}: ${err.code ?? err.message}`)
        }
        process.stderr.write(`wrote swarm key to ${o.out}\n`)
      } catch (err) {
        exitWith(err)
      }
    })
}
