/**
 * Whom the localhost proxy answers. A web page can make a browser send
 * requests to 127.0.0.1 under the page's own host name (DNS rebinding: the
 * attacker's name resolves to 127.0.0.1 once the page has loaded), and then
 * read the answers as same-origin. So every request must name the proxy
 * itself in its Host (or, in absolute form, its request target): a loopback
 * name, the address it listens on, or `<id>.<suffix>`, which serves that one
 * content and nothing else. The dashboard's data is also refused to other
 * origins, whatever they name.
 */
import { isIP } from 'node:net'
import type { IncomingMessage } from 'node:http'
import { CdnError, ForbiddenError } from '../../core/errors.ts'

/** 421 (RFC 9110 §15.5.20): this server does not answer for that name. */
export class MisdirectedRequestError extends CdnError {
  constructor (message = 'misdirected request', options?: ErrorOptions) { super(message, 'ERR_MISDIRECTED', 421, options) }
}

export interface HostRules {
  /** the address the proxy listens on (`--listen`) */
  listenHost: string
  /** `host:port` the proxy announces (`--announce`), a name it answers to as well */
  announced?: string
  /** host suffix of contents served as host names, lower case */
  suffix: string
}

export type Addressed =
  /** one of the proxy's own names: every route */
  | { kind: 'own' }
  /** `<label>.<suffix>`: that content, nothing else */
  | { kind: 'content', label: string }
  /** somebody else's name; `absolute`: sent as to an HTTP proxy */
  | { kind: 'foreign', absolute: boolean }

const LOOPBACK = ['127.0.0.1', 'localhost', '::1']
const WILDCARD = new Set(['0.0.0.0', '::', ''])

/** The host name of a Host header or URL authority: lower case, IPv6 without brackets, no port, no trailing dot; undefined when malformed. */
export function hostName (authority: string): string | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(authority.trim())
  if (m == null) return undefined
  let name = m[1].toLowerCase()
  if (name.startsWith('[')) name = name.slice(1, -1)
  return name.endsWith('.') ? name.slice(0, -1) : name
}

/** Decides whom a request is addressed to; see the module comment. */
export function addressedTo (req: IncomingMessage, rules: HostRules): Addressed {
  const target = req.url ?? '/'
  const absolute = /^https?:\/\//i.test(target)
  let authority: string | undefined
  if (absolute) {
    // RFC 9112 §3.2.2: in absolute form the target's authority is the host, whatever the Host header says.
    try {
      authority = new URL(target).host
    } catch {
      return { kind: 'foreign', absolute }
    }
  } else authority = req.headers.host
  const name = authority == null ? undefined : hostName(authority)
  if (name == null || name === '') return { kind: 'foreign', absolute }
  const tail = `.${rules.suffix}`
  if (name.endsWith(tail) && name.length > tail.length) return { kind: 'content', label: name.slice(0, -tail.length) }
  // Absolute form is for the browser's proxy use, which is only ever for the suffix: we are not an open proxy.
  if (absolute) return { kind: 'foreign', absolute }
  const own = isOwnName(name, rules.listenHost) || (rules.announced != null && name === hostName(rules.announced))
  return own ? { kind: 'own' } : { kind: 'foreign', absolute }
}

function isOwnName (name: string, listenHost: string): boolean {
  const listen = hostName(listenHost) ?? listenHost.toLowerCase()
  if (LOOPBACK.includes(name) || name === listen) return true
  // Listening everywhere, the proxy is reached by the machine's addresses. An IP
  // literal cannot be rebound (no DNS answer is involved), so any one will do.
  return WILDCARD.has(listen) && isIP(name) !== 0
}

/** The error a request to a foreign name gets. */
export function foreignHostError (to: { absolute: boolean }, rules: HostRules): CdnError {
  if (to.absolute) return new ForbiddenError(`this proxy serves only *.${rules.suffix} hosts`)
  return new MisdirectedRequestError(`this proxy answers only for its own address (127.0.0.1, localhost, [::1]${isWildcard(rules.listenHost) ? ', this machine\'s IP addresses' : `, ${rules.listenHost}`}) and <id>.${rules.suffix}; open it by one of those names`)
}

function isWildcard (host: string): boolean {
  return WILDCARD.has(hostName(host) ?? host)
}

/**
 * Refuses a request made by another origin's page. Browsers say where a
 * request comes from in `Sec-Fetch-Site` and, for cross-origin fetches and
 * every EventSource, in `Origin`; a request with neither (curl, a typed URL)
 * is not a page's. `same-site` is refused too: another port on localhost is
 * the same site, not the same origin.
 */
export function refuseCrossOrigin (req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site']
  if (site === 'cross-site' || site === 'same-site') throw new ForbiddenError(`the dashboard's data is not served to other sites (Sec-Fetch-Site: ${site})`)
  const origin = req.headers.origin
  if (origin == null) return
  if (!sameOrigin(origin, req.headers.host)) throw new ForbiddenError('the dashboard\'s data is not served to other origins')
}

function sameOrigin (origin: string, host: string | undefined): boolean {
  if (host == null) return false
  try {
    const from = new URL(origin)
    // URL drops a default port on both sides, so `localhost` and `localhost:80` compare equal.
    return from.protocol === 'http:' && from.host === new URL(`http://${host}`).host
  } catch {
    return false // `null` and other opaque origins
  }
}

/**
 * `host:port` the PAC file sends browsers to: the listen address, never a
 * request's Host (a page could choose that). A wildcard address is no
 * destination, so the machine's own browser is sent to loopback.
 */
export function pacAddress (listenHost: string, port: number): string {
  const name = hostName(listenHost) ?? listenHost
  if (WILDCARD.has(name)) return `127.0.0.1:${port}`
  return `${isIP(name) === 6 ? `[${name}]` : name}:${port}`
}
