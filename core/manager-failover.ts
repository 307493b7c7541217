/**
 * Several managers of one pool, tried in turn. Shared by the proxy's manager
 * client and the CLI's API calls: a manager that cannot be reached (or says
 * it cannot serve: 502/503/504) is skipped for the next one; any other
 * answer of a live manager, a 4xx above all, is final, because another
 * manager of the same pool, reading the same catalog, would answer the same.
 */
import { BadInputError, UpstreamError } from './errors.ts'

/** Answers that mean "this manager cannot serve now", not "the request is wrong": gateways and a manager shutting down send them. */
export const FAILOVER_STATUSES: ReadonlySet<number> = new Set([502, 503, 504])

/**
 * Manager URLs from flags or `CDN_MANAGER`: each value may itself be a list
 * (comma- or whitespace-separated); each URL must be http(s); duplicates
 * (same origin) are dropped, the first kept. Order is preference order.
 */
export function parseManagerUrls (values: string | readonly string[]): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const value of typeof values === 'string' ? [values] : values) {
    for (const url of value.split(/[\s,]+/).filter(u => u !== '')) {
      const origin = managerOrigin(url)
      if (seen.has(origin)) continue
      seen.add(origin)
      out.push(url)
    }
  }
  if (out.length === 0) throw new BadInputError('no manager URL given')
  return out
}

/** The origin of an http(s) manager URL; anything else is a one-line BadInputError. */
export function managerOrigin (url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (err) {
    throw new BadInputError(`invalid manager URL "${url}"`, { cause: err })
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new BadInputError(`invalid manager URL "${url}": expected http:// or https://`)
  return parsed.origin
}

/**
 * The managers to try, in preference order, starting with the one that
 * answered last: a dead first manager costs one failed attempt, not one per
 * call.
 */
export class ManagerRing {
  private readonly list: string[]
  private first = 0

  constructor (urls: string | readonly string[]) {
    this.list = parseManagerUrls(urls)
  }

  /** Every URL, in the order given (learned ones last). */
  get urls (): readonly string[] {
    return this.list
  }

  /** The URL tried first: the one that answered last, else the first given. */
  get current (): string {
    return this.list[this.first]
  }

  /** The URLs in the order to try them now. */
  order (): string[] {
    return [...this.list.slice(this.first), ...this.list.slice(0, this.first)]
  }

  /** A manager answered (whatever it said): start with it next time. */
  answered (url: string): void {
    const i = this.list.indexOf(url)
    if (i >= 0) this.first = i
  }

  /** Adds URLs learned from a manager (its `managers` list) after the known ones; invalid or known ones are ignored. Returns those added. */
  learn (urls: readonly string[]): string[] {
    const known = new Set(this.list.map(managerOrigin))
    const added: string[] = []
    for (const url of urls) {
      let origin: string
      try {
        origin = managerOrigin(url)
      } catch {
        continue
      }
      if (known.has(origin)) continue
      known.add(origin)
      this.list.push(url)
      added.push(url)
    }
    return added
  }
}

/**
 * Thrown by an attempt to say "this manager is unreachable, try the next":
 * carries the error the caller sees if no other manager answers. Never
 * escapes tryManagers.
 */
export class TryNextManager extends Error {
  readonly error: Error

  constructor (error: Error) {
    super(error.message, { cause: error })
    this.name = 'TryNextManager'
    this.error = error
  }
}

/**
 * Runs `attempt` on each manager in turn until one answers. An attempt that
 * throws TryNextManager passes to the next manager; anything else it throws
 * is that live manager's final word. With one manager, its own error comes
 * out unchanged (one URL behaves exactly as before); with several, one
 * UpstreamError names each manager and why it failed.
 */
export async function tryManagers<T> (ring: ManagerRing, attempt: (url: string) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const failures: Array<{ url: string, error: Error }> = []
  // A function, not a narrowed property: the signal can abort while an attempt runs.
  const aborted = (): boolean => signal?.aborted === true
  for (const url of ring.order()) {
    if (aborted()) throw signal?.reason
    try {
      const value = await attempt(url)
      ring.answered(url)
      return value
    } catch (err) {
      if (!(err instanceof TryNextManager)) {
        // Refused or failed, but alive: it is where the next call starts.
        ring.answered(url)
        throw err
      }
      if (aborted()) throw err.error
      failures.push({ url, error: err.error })
    }
  }
  if (failures.length === 1) throw failures[0].error
  throw new UpstreamError(`no manager answered: ${failures.map(f => `${f.url} (${f.error.message})`).join('; ')}`, { cause: failures[failures.length - 1].error })
}
