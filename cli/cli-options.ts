/** Option parsers and options shared by several `cdn` commands. */
import { InvalidArgumentError, Option, type Command } from 'commander'
import { loadCa } from '../core/tls-client.ts'
import { parseDuration } from '../core/units.ts'
import { MANAGER_DEFAULTS } from '../manager/defaults.ts'
import { PROXY_DEFAULTS } from '../proxy/defaults.ts'
import { ManagerRing, type ApiOptions } from './manager-api.ts'
import { parseManagerUrls } from '../core/manager-failover.ts'
import { clientToken } from './secrets.ts'

/** Where a manager and a proxy started with their defaults answer. */
const LOCAL_MANAGER = `http://${MANAGER_DEFAULTS.httpHost}:${MANAGER_DEFAULTS.httpPort}`
const LOCAL_PROXY = `http://${PROXY_DEFAULTS.httpHost}:${PROXY_DEFAULTS.httpPort}`

// Defaults that come from the environment are resolved when a command runs and
// never given to commander, whose help would print their values.
/**
 * The managers to call, in preference order: every `--manager` (repeatable),
 * else `CDN_MANAGER` (a comma- or whitespace-separated list), else the local
 * default. Each value may itself be a list.
 */
export function managerUrls (o: { manager?: string | string[] }, env: NodeJS.ProcessEnv = process.env): string[] {
  const given = typeof o.manager === 'string' ? [o.manager] : o.manager ?? []
  if (given.length > 0) return parseManagerUrls(given)
  const fromEnv = env.CDN_MANAGER?.trim() ?? ''
  return parseManagerUrls(fromEnv !== '' ? fromEnv : LOCAL_MANAGER)
}
export const proxyUrl = (o: { proxy?: string }): string => o.proxy ?? process.env.CDN_PROXY ?? LOCAL_PROXY

export function intArg (name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`)
    return n
  }
}

export function collect (v: string, prev: string[] = []): string[] { return [...prev, v] }

export function shareArg (v: string): number {
  const n = Number(v)
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('must be a number in (0, 1], e.g. 0.2')
  return n
}

export function durationMs (v: string | undefined): number | undefined {
  return v == null ? undefined : parseDuration(v)
}

export function print (json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text}\n`)
}

export const managerOption = (): Option => new Option('--manager <url>', `manager API URL, http:// or https://; repeat it (or give a comma-separated list) for several managers of one pool, tried in turn (default: $CDN_MANAGER, a list too, else ${LOCAL_MANAGER})`).argParser(collect)
const tokenFileOption = (): Option => new Option('--token-file <file>', 'file holding your token (default: the token in $CDN_TOKEN)')
export const caOption = (): Option => new Option('--ca <file>', "PEM certificate of the CA that signed an https:// manager's certificate (default: the file named by $CDN_CA, else the system's CAs)")
export const proxyOption = (): Option => new Option('--proxy <url>', `proxy URL used in printed gateway links (default: $CDN_PROXY, else ${LOCAL_PROXY})`)

/** A command that calls the manager's API: where it is, who calls, which CA to trust. */
export function apiCommand (cmd: Command): Command {
  return cmd.addOption(managerOption()).addOption(tokenFileOption()).addOption(caOption())
}

/** One ManagerRing for all the command's calls, so each starts with the manager that answered the one before. */
export async function apiOptions (o: { manager?: string | string[], tokenFile?: string, ca?: string }): Promise<ApiOptions> {
  return { manager: new ManagerRing(managerUrls(o)), token: await clientToken(o.tokenFile), ca: await loadCa(o.ca) }
}
