/** `cdn node drain|rm`, `cdn token …`, `cdn status`, `cdn events`: looking after the pool. */
import type { Command } from 'commander'
import { parseDuration } from '../core/units.ts'
import { apiCommand, apiOptions, durationMs, intArg, print } from './cli-options.ts'
import { drainNode, removeNode } from './node-commands.ts'
import { formatEvents, formatStatus, listEvents, poolStatus } from './pool-commands.ts'
import { createToken, formatCreatedToken, formatTokens, listTokens, revokeToken } from './token-commands.ts'

export function addNodeAdmin (node: Command): void {
  apiCommand(node.command('drain <peer>'))
    .description('move every copy off a node (peer id, unique prefix or the short form of cdn status); waits, with progress, until it is empty (admin token)')
    .option('--no-wait', 'return once the drain is requested')
    .option('--timeout <duration>', 'give up waiting after this long (the drain goes on)')
    .option('--json', 'print JSON')
    .action(async (peer: string, o) => {
      const r = await drainNode(await apiOptions(o), peer, {
        wait: o.wait !== false,
        progress: o.json !== true,
        timeoutMs: o.timeout != null ? parseDuration(o.timeout) : undefined
      })
      print(o.json === true, r, r.drained ? `node ${r.peerId} is drained: it holds nothing; remove it with cdn node rm ${r.peerId}` : `node ${r.peerId} is draining (${r.copies} copies to move)`)
    })

  apiCommand(node.command('rm <peer>'))
    .description('remove a node from the pool (refused while it holds copies the pool needs: drain it first) (admin token)')
    .option('--json', 'print JSON')
    .action(async (peer: string, o) => {
      const r = await removeNode(await apiOptions(o), peer)
      print(o.json === true, r, `node ${r.peerId} removed from the pool`)
    })
}

export function addTokenCommands (token: Command): void {
  apiCommand(token.command('create'))
    .description('make a token; prints it once')
    .requiredOption('--role <role>', 'admin, publisher, reader or join')
    .requiredOption('--name <name>', 'who or what it is for')
    .option('--ttl <duration>', 'expire it after this long, e.g. 30d (default: never)')
    .option('--json', 'print one JSON line')
    .action(async (o) => {
      const r = await createToken(await apiOptions(o), { role: o.role, name: o.name, ttlMs: durationMs(o.ttl) })
      print(o.json === true, r, formatCreatedToken(r))
    })

  apiCommand(token.command('ls'))
    .description('list tokens (never their secret)')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await listTokens(await apiOptions(o))
      print(o.json === true, r, formatTokens(r))
    })

  apiCommand(token.command('revoke <id>'))
    .description('revoke a token for good: its next request is refused')
    .option('--json', 'print JSON')
    .action(async (id: string, o) => {
      const r = await revokeToken(await apiOptions(o), id)
      print(o.json === true, r, `revoked token ${r.id}`)
    })
}

export function addPoolCommands (program: Command): void {
  apiCommand(program.command('status'))
    .description('show the pool of nodes (admin, publisher or reader token)')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await poolStatus(await apiOptions(o))
      print(o.json === true, r, formatStatus(r))
    })

  apiCommand(program.command('events'))
    .description("show the manager's event log, newest first (admin, publisher or reader token)")
    .option('--limit <n>', 'how many', intArg('--limit', 1), 50)
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await listEvents(await apiOptions(o), o.limit)
      print(o.json === true, r, formatEvents(r))
    })
}
