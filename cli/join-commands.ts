/**
 * The CLI side of joining nodes: the command `cdn manager start` prints and
 * `cdn manager join-command` prints again; the join token itself stays in a
 * file or the environment (never argv, where `ps` shows it).
 */
import { joinCommand, readManagerAddress, type JoinCommand } from '../manager/nodes/join-command.ts'

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
