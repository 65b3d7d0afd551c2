import { Command, Option } from 'commander'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster } from '../cluster.js'
import { CliError, exitWith } from './errors.js'

export function demoCommand (): Command {
  return new Command('demo')
    .description('run a local cluster in temporary data dirs until Ctrl-C')
    .addOption(new Option('--nodes <n>', 'how many nodes').default('3'))
    .addOption(new Option('--http-port <port>', 'HTTP port of the first node (then +1, +2, ...)').default('7777'))
    .addOption(new Option('--p2p-port <port>', 'libp2p port of the first node (then +1, +2, ...)').default('17777'))
    .addOption(new Option('--resp-port <port>', 'Redis-protocol port of the first node (then +1, +2, ...)').default('6380'))
    .option('--keep', 'keep the data dirs on exit')
    .action(async (o: { nodes: string, httpPort: string, p2pPort: string, respPort: string, keep?: boolean }) => {
      try {
        const nodes = Number(o.nodes)
        const httpBase = Number(o.httpPort)
        const p2pBase = Number(o.p2pPort)
        const respBase = Number(o.respPort)
        if (!Number.isInteger(nodes) || nodes < 1 || nodes > 32) throw new CliError('--nodes must be 1..32', 2)
        for (const p of [httpBase, p2pBase, respBase]) if (!Number.isInteger(p) || p < 1 || p + nodes > 65535) throw new CliError('ports must be 1..65535', 2)
        const dir = mkdtempSync(join(tmpdir(), 'countd-demo-'))
        process.stderr.write(`starting ${nodes} nodes in ${dir} ...\n`)
        const cluster = await Cluster.start({ nodes, httpBase, p2pBase, dir, logLevel: 'warn', argsFor: i => ['--resp', `127.0.0.1:${respBase + i}`] })
        const stop = (): void => {
          process.stderr.write('\nstopping demo cluster\n')
          cluster.stop(o.keep !== true).then(() => process.exit(0), () => process.exit(1))
        }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
        const first = cluster.nodes[0].url
        process.stdout.write([
          `countd demo: ${nodes} nodes up (data in ${dir})`,
          ...cluster.nodes.map((n, i) => `  ${n.name}  ${n.url}   redis 127.0.0.1:${respBase + i}   peer ${n.peerId}`),
          '',
          'try:',
          `  curl -X POST ${first}/counter/hits -d 5`,
          `  curl ${cluster.nodes[nodes - 1].url}/counter/hits/value`,
          `  npx countd get hits --consistent --api ${first}`,
          `  redis-cli -p ${respBase} INCR hits        # any Redis client works`,
          `  curl -X POST ${first}/items -H 'Content-Type: application/json' -d '[{"id":"a","tenant":"t1"}]'`,
          `  curl ${first}/items/t1/count`,
          `  curl ${first}/ids/next`,
          'Ctrl-C stops the cluster and removes its data.',
          ''
        ].join('\n'))
      } catch (err) {
        exitWith(err)
      }
    })
}
