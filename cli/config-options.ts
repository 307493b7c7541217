/**
 * `--config FILE` for the daemons' start commands: the file's keys are the
 * command's own flags, parsed and checked exactly as flags are, and a flag
 * on the command line wins over the file (core/config-file.ts).
 */
import type { Command, Option } from 'commander'
import { configKey, readConfigFile, type ConfigFile, type ConfigValue } from '../core/config-file.ts'
import { BadInputError } from '../core/errors.ts'

export function withConfigFile (cmd: Command): Command {
  cmd.option('--config <file>', 'JSON file of any of these options by flag name, e.g. {"listen": "0.0.0.0", "http-port": 7070}; flags on the command line win; no secrets')
  cmd.hook('preAction', async (_self, action) => {
    const path = action.opts().config as string | undefined
    if (path != null) applyConfig(action, await readConfigFile(path), path)
  })
  return cmd
}

/** Sets every option the command line left alone from the file. */
export function applyConfig (cmd: Command, config: ConfigFile, path: string): void {
  const options = new Map<string, Option>(cmd.options.map(o => [o.attributeName(), o]))
  for (const [raw, value] of Object.entries(config)) {
    const key = configKey(raw)
    const opt = options.get(key)
    if (opt == null || key === 'config') {
      throw new BadInputError(`config file ${path}: "${raw}" is not an option of cdn ${cmd.parent?.name() ?? ''} ${cmd.name()} (see --help)`.replace('  ', ' '))
    }
    if (cmd.getOptionValueSource(key) === 'cli') continue
    cmd.setOptionValueWithSource(key, convert(opt, value, `config file ${path}: "${raw}"`), 'config')
  }
}

function convert (opt: Option, value: ConfigValue, where: string): unknown {
  const takesValue = opt.required || opt.optional
  if (!takesValue) {
    if (typeof value !== 'boolean') throw new BadInputError(`${where} must be true or false`)
    return value
  }
  const values = Array.isArray(value) ? value : [value]
  let result: unknown
  for (const v of values) {
    try {
      result = opt.parseArg != null ? opt.parseArg(String(v), result) : String(v)
    } catch (err) {
      throw new BadInputError(`${where}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  // A list is only for flags that may be repeated (their parser collects into an array).
  if (Array.isArray(value) && !Array.isArray(result)) throw new BadInputError(`${where} takes one value, not a list`)
  return result
}
