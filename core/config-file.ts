/**
 * Daemon configuration files: one JSON object whose keys are the daemon's
 * flags (`"http-port": 7070` or `"httpPort": 7070`; repeatable flags take
 * arrays). Flags given on the command line win over the file. Secrets have
 * no place in it: a key that names a token is refused, pointing at the
 * environment variable or file that carries it instead, because config
 * files end up in repositories, backups and support tickets.
 */
import { readFile } from 'node:fs/promises'
import { BadInputError } from './errors.ts'

export type ConfigValue = string | number | boolean | Array<string | number>
export type ConfigFile = Record<string, ConfigValue>

/** The key as commander names the option: `http-port` and `httpPort` are both `httpPort`. */
export function configKey (key: string): string {
  return key.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())
}

/** Options that carry a secret value (as opposed to a file or variable naming one). */
export function isSecretKey (key: string): boolean {
  return /token$|secret$|password$|key$/i.test(configKey(key)) && !/file$/i.test(configKey(key))
}

export async function readConfigFile (path: string): Promise<ConfigFile> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    throw new BadInputError(`cannot read config file ${path}: ${err?.code === 'ENOENT' ? 'no such file' : String(err?.message ?? err)}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new BadInputError(`config file ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadInputError(`config file ${path} must hold one JSON object of flag names and values`)
  const out: ConfigFile = {}
  for (const [key, value] of Object.entries(parsed)) {
    if (isSecretKey(key)) throw new BadInputError(`config file ${path}: "${key}" is a secret; it belongs in the environment or a file the daemon reads (see --help), never in a config file`)
    if (!isConfigValue(value)) throw new BadInputError(`config file ${path}: "${key}" must be a string, a number, true/false or a list of them`)
    out[key] = value
  }
  return out
}

function isConfigValue (v: unknown): v is ConfigValue {
  if (typeof v === 'string' || typeof v === 'boolean') return true
  if (typeof v === 'number') return Number.isFinite(v)
  return Array.isArray(v) && v.every(x => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))
}
