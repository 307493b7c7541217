#!/usr/bin/env node
/**
 * The `cdn` command: daemons (manager, node, proxy), publishing and fetching,
 * pool inspection, and `cdn up` for a whole local network. Each family of
 * commands is declared in its own cli/register-*.ts; the order below is the
 * order of the help.
 */
import { Command } from 'commander'
import { CdnError, describeError } from '../core/errors.ts'
import { cliVersion, onUnexpectedError } from './cli-basics.ts'
import { addReadCommands, addPublishCommands } from './register-content.ts'
import { addManagerCommands, addNodeStart, addProxyStart } from './register-daemons.ts'
import { addNodeAdmin, addPoolCommands, addTokenCommands } from './register-pool.ts'
import { addUpCommand } from './register-up.ts'

const program = new Command('cdn')
  .description('peer-to-peer content delivery network')
  .version(cliVersion(), '-V, --version')
  .option('--verbose', "log lines on stderr (JSON) for the commands people run (get, publish, …); CDN_LOG_LEVEL sets the level too")
  .showHelpAfterError()
const verbose = (): boolean => program.opts().verbose === true
onUnexpectedError(verbose)

addManagerCommands(program.command('manager').description('the manager: publish pipeline, catalog, placement, API'))
const node = program.command('node').description('a distribution node')
addNodeStart(node)
addNodeAdmin(node)
addProxyStart(program.command('proxy').description("the viewer's localhost gateway"))
addPublishCommands(program)
addTokenCommands(program.command('token').description('tokens of the pool (admin token)'))
addReadCommands(program, verbose)
addPoolCommands(program)
addUpCommand(program)

try {
  await program.parseAsync(process.argv)
} catch (err) {
  // One line for people and scripts; the code lets scripts branch without parsing prose.
  const code = err instanceof CdnError ? ` [${err.code}]` : ''
  process.stderr.write(`cdn: ${describeError(err)}${code}\n`)
  process.exit(1)
}
