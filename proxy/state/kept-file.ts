/**
 * What the proxy keeps between runs in its state directory (node list, name
 * records), read back at start. A missing file is a first start; an
 * unreadable or damaged one is logged and treated as missing: what it held
 * is asked for again.
 */
import { readFile } from 'node:fs/promises'
import { describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'

/** The parsed JSON of `file`, or undefined (absent, unreadable or not JSON: `what` says which kept state in the log). */
export async function readKeptFile<T> (file: string, what: string, logger: Logger): Promise<Partial<T> | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err: any) {
    if (err?.code !== 'ENOENT') logger.warn({ file, err: describeError(err) }, `could not read the kept ${what}`)
    return undefined
  }
  try {
    return JSON.parse(text) as Partial<T>
  } catch (err) {
    logger.warn({ file, err: describeError(err) }, `kept ${what} is unreadable; starting without it`)
    return undefined
  }
}
