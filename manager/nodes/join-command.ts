/**
 * What an operator needs to add a node: the manager's libp2p address (with
 * its peer id, whose orders the node will obey) and a join token. The token
 * lives in `<dataDir>/join.token` (0600), created on the first start; the
 * command that joins a node names that file or the `CDN_JOIN_TOKEN`
 * variable, never the token itself, so it can be pasted into a shell
 * history, a ticket or a log without giving the pool away.
 *
 * Each start also writes `<dataDir>/address.json`, so `cdn manager
 * join-command` can print the command again later without asking the
 * running manager.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { BadInputError, NotFoundError } from '../../core/errors.ts'
import { replaceFile } from '../../core/replace-file.ts'

export const JOIN_TOKEN_FILE = 'join.token'
const ADDRESS_FILE = 'address.json'
/** The environment variable `cdn node start` reads its join token from. */
export const JOIN_TOKEN_ENV = 'CDN_JOIN_TOKEN'

export interface ManagerAddress {
  peerId: string
  /** announced libp2p addresses, each with /p2p/<peerId> */
  multiaddrs: string[]
  /** announced HTTP API */
  http: string
  /** true when the manager listens beyond loopback, so nodes elsewhere can join */
  reachableFromOtherHosts: boolean
}

/** The pool's standing join token: read from the data directory, created (0600) on first use. */
export async function ensureJoinToken (dataDir: string): Promise<string> {
  const path = join(dataDir, JOIN_TOKEN_FILE)
  try {
    const token = (await readFile(path, 'utf8')).trim()
    if (token === '') throw new BadInputError(`${path} is empty; delete it and restart the manager to make a new join token`)
    return token
  } catch (err: any) {
    if (err?.code !== 'ENOENT') throw err
  }
  const token = randomBytes(24).toString('base64url')
  await mkdir(dataDir, { recursive: true })
  // 'wx': two managers racing on one directory must not each believe their own token.
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  } catch (err: any) {
    if (err?.code === 'EEXIST') return await ensureJoinToken(dataDir)
    throw err
  }
  return token
}

export async function writeManagerAddress (dataDir: string, address: ManagerAddress): Promise<void> {
  await replaceFile(join(dataDir, ADDRESS_FILE), Buffer.from(`${JSON.stringify(address)}\n`))
}

export async function readManagerAddress (dataDir: string): Promise<ManagerAddress> {
  const path = join(dataDir, ADDRESS_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT') throw new NotFoundError(`no manager has started in ${dataDir} yet (start one with cdn manager start --dir ${dataDir})`)
    throw err
  }
  const a = JSON.parse(text) as ManagerAddress
  if (typeof a?.peerId !== 'string' || !Array.isArray(a.multiaddrs) || a.multiaddrs.length === 0) throw new BadInputError(`${path} is not a manager address file`)
  return a
}

export interface JoinCommand {
  /** the shell command, to run on the node's machine */
  command: string
  /** the manager multiaddr a node is started with */
  manager: string
  /** absolute path of the join token file on the manager's machine */
  tokenFile: string
  env: typeof JOIN_TOKEN_ENV
}

/**
 * The command that joins a new node. It reads the token from the file at
 * the path it has on the manager's machine: on another machine, copy the
 * file to the same path or set CDN_JOIN_TOKEN some other way.
 */
export function joinCommand (dataDir: string, address: ManagerAddress, cdn = 'cdn'): JoinCommand {
  const tokenFile = isAbsolute(dataDir) ? join(dataDir, JOIN_TOKEN_FILE) : resolve(dataDir, JOIN_TOKEN_FILE)
  const manager = address.multiaddrs[0]
  const listen = address.reachableFromOtherHosts ? ' --listen 0.0.0.0' : ''
  const command = `${JOIN_TOKEN_ENV}="$(cat ${shellQuote(tokenFile)})" ${cdn} node start --manager ${manager}${listen} --data ./cdn-node`
  return { command, manager, tokenFile, env: JOIN_TOKEN_ENV }
}

function shellQuote (s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}
