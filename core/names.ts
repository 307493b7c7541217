/**
 * The syntax of a pool's stable names (`films/launch.mp4`): what the manager
 * accepts when one is published, the proxy in `/n/<name>` and the CLI
 * wherever a content id or a name may stand.
 */
import { BadInputError } from './errors.ts'
import { parseBlobId } from './ids.ts'

export const MAX_NAME_CHARS = 200
const NAME_CHARS = /^[A-Za-z0-9._~/-]+$/

/** True when `text` is a content or chunk id, which a name may never be (a CLI argument would be ambiguous). */
export function isBlobId (text: string): boolean {
  try {
    parseBlobId(text)
    return true
  } catch {
    return false
  }
}

/**
 * Checks a name: 1 to 200 characters of `A-Z a-z 0-9 . _ ~ / -`, no `..`,
 * not starting with `/`, and not an id. Returns it unchanged.
 */
export function parseName (text: unknown): string {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_NAME_CHARS) {
    throw new BadInputError(`a name is 1 to ${MAX_NAME_CHARS} characters`)
  }
  const shown = text.slice(0, 80)
  if (!NAME_CHARS.test(text)) throw new BadInputError(`invalid name "${shown.replace(/[^\x20-\x7e]/g, '?')}": only letters, digits and . _ ~ / - are allowed`)
  if (text.includes('..')) throw new BadInputError(`invalid name "${shown}": ".." is not allowed`)
  if (text.startsWith('/')) throw new BadInputError(`invalid name "${shown}": it may not start with "/"`)
  if (isBlobId(text)) throw new BadInputError(`invalid name "${shown}": a content id cannot be a name`)
  return text
}
