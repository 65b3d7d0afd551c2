// countd CLI entry point (bin/countd imports this).
import '../polyfill.js'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../paths.js'
import { Command, CommanderError } from 'commander'
import { startCommand } from './start.js'
import { incCommand } from './inc.js'
import { getCommand } from './get.js'
import { statusCommand } from './status.js'
import { demoCommand } from './demo.js'
import { membersCommand, forgetCommand } from './members.js'
import { keygenCommand } from './keygen.js'
import { itemsCommand } from './items.js'
import { idCommand } from './id.js'
import { exitWith } from './errors.js'

const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }

const program = new Command('countd')
  .description('replicated grow-only counters over libp2p, durable in LevelDB')
  .version(pkg.version, '-V, --version')
  .showSuggestionAfterError(true)
  .exitOverride()
for (const cmd of [startCommand(), incCommand(), getCommand(), statusCommand(), membersCommand(), forgetCommand(), keygenCommand(), demoCommand(), itemsCommand(), idCommand()]) {
  program.addCommand(cmd.exitOverride())
  for (const sub of cmd.commands) sub.exitOverride()
}

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander already printed its one-line message (or the help/version).
    // Asked-for help and --version are 0; help shown because no command was
    // given (`countd`, `countd items`) is a usage error: 2.
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || (err.code === 'commander.help' && err.exitCode === 0)
    process.exit(ok ? 0 : 2)
  }
  exitWith(err)
}
