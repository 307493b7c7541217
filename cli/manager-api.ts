import { request } from 'undici'
import { BadInputError, CdnError, ConflictError, ForbiddenError, NotFoundError, TooLargeError, UnauthorizedError, UpstreamError } from '../core/errors.ts'
import { createTlsAgent, tlsErrorHint } from '../core/tls-client.ts'
import { FAILOVER_STATUSES, ManagerRing, tryManagers, TryNextManager } from '../core/manager-failover.ts'

export { ManagerRing }

/** The CLI's side of the manager HTTP API (docs/PROTOCOLS.md). */
export interface ApiOptions {
  /**
   * http:// or https://; several managers of one pool are tried in turn, and
   * a ManagerRing shared by a command's calls starts each with the manager
   * that answered last
   */
  manager: string | readonly string[] | ManagerRing
  token?: string
  /** PEM CA certificates to trust for an https:// manager (`--ca`, `CDN_CA`); default: the system's */
  ca?: Buffer
  signal?: AbortSignal
  /** ms, default 30 s */
  timeout?: number
}

export function managerRing (manager: ApiOptions['manager']): ManagerRing {
  return manager instanceof ManagerRing ? manager : new ManagerRing(typeof manager === 'string' ? [manager] : manager)
}

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'

/** The answer an error was made from: its status and JSON body (absent when no answer came). */
export interface ManagerAnswer { status: number, body: any }
const answers = new WeakMap<Error, ManagerAnswer>()

/**
 * The manager's answer behind an error callManager threw, so a caller can
 * read what the one-line message leaves out (e.g. a 409's list of missing
 * chunks), or tell a manager's final word from no answer at all.
 */
export function managerAnswer (err: unknown): ManagerAnswer | undefined {
  return err instanceof Error ? answers.get(err) : undefined
}

function answered<E extends Error> (err: E, status: number, body: any): E {
  answers.set(err, { status, body })
  return err
}

function statusError (status: number, message: string): CdnError {
  if (status === 401) return new UnauthorizedError(message)
  if (status === 403) return new ForbiddenError(message)
  if (status === 404) return new NotFoundError(message)
  if (status === 409) return new ConflictError(message)
  if (status === 413) return new TooLargeError(message)
  if (status >= 400 && status < 500) return new BadInputError(message)
  return new UpstreamError(message)
}

function managerUrl (base: string, path: string): URL {
  let url: URL
  try {
    url = new URL(path, base)
  } catch (err) {
    throw new BadInputError(`invalid manager URL "${base}"`, { cause: err })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadInputError(`the manager URL must be http:// or https://, got "${base}"`)
  return url
}

/** Errors of a request that never reached the manager's handler: safe to send to another manager whatever the method. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

function neverSent (err: any): boolean {
  return NEVER_SENT.has(err?.code) || tlsErrorHint(err) != null || typeof err?.code === 'string' && String(err.code).startsWith('ERR_TLS')
}

/**
 * Calls the managers in turn (manager-failover.ts) and returns parsed JSON,
 * turning error answers and unreachable managers into one-line CdnErrors. A
 * GET or a PUT (idempotent) goes to the next manager on any failure to get
 * an answer; a POST or DELETE only when it surely never arrived (refused
 * connection, name or TLS failure, 502/503/504): one that timed out or was
 * cut may have been done, and is not done twice.
 */
export async function callManager (opts: ApiOptions, method: Method, path: string, body?: { data: any, headers: Record<string, string> }): Promise<any> {
  const ring = managerRing(opts.manager)
  return await tryManagers(ring, async (base) => await callOne(base, opts, method, path, body), opts.signal)
}

/** One manager, once: what callManager did before several managers. */
async function callOne (base: string, opts: ApiOptions, method: Method, path: string, body?: { data: any, headers: Record<string, string> }): Promise<any> {
  const url = managerUrl(base, path)
  const signals = [AbortSignal.timeout(opts.timeout ?? 30_000), ...(opts.signal != null ? [opts.signal] : [])]
  const headers: Record<string, string> = { ...(body?.headers ?? {}) }
  if (opts.token != null) headers.authorization = `Bearer ${opts.token}`
  const dispatcher = opts.ca != null ? createTlsAgent(opts.ca) : undefined
  try {
    let res
    try {
      res = await request(url, { method, headers, body: body?.data, signal: AbortSignal.any(signals), ...(dispatcher != null ? { dispatcher } : {}) })
    } catch (err: any) {
      if (opts.signal?.aborted === true) throw opts.signal.reason
      const again = method === 'GET' || method === 'PUT' || neverSent(err)
      const error = err?.name === 'TimeoutError' || err?.name === 'AbortError'
        ? new UpstreamError(`manager at ${base} did not answer in time`, { cause: err })
        : new UpstreamError(`cannot reach the manager at ${base} (${tlsErrorHint(err) ?? err?.code ?? err?.message ?? err})`, { cause: err })
      throw again ? new TryNextManager(error) : error
    }
    if (FAILOVER_STATUSES.has(res.statusCode)) {
      const error = answered(new UpstreamError(await failoverMessage(res, base)), res.statusCode, undefined)
      throw new TryNextManager(error)
    }
    const text = await res.body.text()
    let json: any
    try {
      json = text === '' ? {} : JSON.parse(text)
    } catch {
      throw answered(new UpstreamError(`manager answered ${res.statusCode} with a body that is not JSON`), res.statusCode, undefined)
    }
    if (res.statusCode >= 400) {
      throw answered(statusError(res.statusCode, errorMessage(json) ?? `manager answered ${res.statusCode}`), res.statusCode, json)
    }
    return json
  } finally {
    await dispatcher?.close()
  }
}

/** `{ error: { message } }` as every route answers, or `{ error: "message" }`. */
function errorMessage (json: any): string | undefined {
  const message = json?.error?.message ?? json?.error
  return typeof message === 'string' ? message : undefined
}

/** The one line a 502/503/504 gets: the manager's own message when it sent JSON (a gateway's page is not shown). */
async function failoverMessage (res: { statusCode: number, body: { text: () => Promise<string> } }, base: string): Promise<string> {
  let message: string | undefined
  try {
    message = JSON.parse(await res.body.text())?.error?.message
  } catch {}
  return typeof message === 'string' ? message : `manager at ${base} answered ${res.statusCode}`
}
