/**
 * The CLI side of joining nodes: the command `cdn manager start` prints and
 * `cdn manager join-command` prints again, and secrets read from the
 * environment (never from argv, where `ps` shows them).
 */
import { joinCommand, readManagerAddress, type JoinCommand } from '../manager/join-command.ts'

/** Comma-separated tokens from an environment variable (`CDN_JOIN_TOKENS`, `CDN_PUBLISHER_TOKENS`). */
export function envTokens (name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[name] ?? '').split(',').map(t => t.trim()).filter(t => t !== '')
}

export async function showJoinCommand (dataDir: string): Promise<JoinCommand> {
  return joinCommand(dataDir, await readManagerAddress(dataDir))
}

/** What `cdn manager start` prints under its ready line. */
export async function joinInstructions (dataDir: string): Promise<string> {
  const j = await showJoinCommand(dataDir)
  return [
    `manager multiaddr: ${j.manager}`,
    'join a node (on its own machine; copy the token file there, or set CDN_JOIN_TOKEN from it):',
    `  ${j.command}`
  ].join('\n')
}
