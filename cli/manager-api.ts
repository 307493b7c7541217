import { request } from 'undici'
import { BadInputError, CdnError, ConflictError, ForbiddenError, NotFoundError, TooLargeError, UnauthorizedError, UpstreamError } from '../core/errors.ts'
import { createTlsAgent, tlsErrorHint } from '../core/tls-client.ts'

/** The CLI's side of the manager HTTP API (docs/PROTOCOLS.md). */
export interface ApiOptions {
  /** http:// or https:// */
  manager: string
  token?: string
  /** PEM CA certificates to trust for an https:// manager (`--ca`, `CDN_CA`); default: the system's */
  ca?: Buffer
  signal?: AbortSignal
  /** ms, default 30 s */
  timeout?: number
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

/** Calls the manager and returns parsed JSON, turning error answers and unreachable managers into one-line CdnErrors. */
export async function callManager (opts: ApiOptions, method: 'GET' | 'POST' | 'DELETE', path: string, body?: { data: any, headers: Record<string, string> }): Promise<any> {
  const url = managerUrl(opts.manager, path)
  const signals = [AbortSignal.timeout(opts.timeout ?? 30_000), ...(opts.signal != null ? [opts.signal] : [])]
  const headers: Record<string, string> = { ...(body?.headers ?? {}) }
  if (opts.token != null) headers.authorization = `Bearer ${opts.token}`
  const dispatcher = opts.ca != null ? createTlsAgent(opts.ca) : undefined
  try {
    let res
    try {
      res = await request(url, { method, headers, body: body?.data, signal: AbortSignal.any(signals), ...(dispatcher != null ? { dispatcher } : {}) })
    } catch (err: any) {
      if (err?.name === 'TimeoutError' || err?.name === 'AbortError') throw new UpstreamError(`manager at ${opts.manager} did not answer in time`, { cause: err })
      throw new UpstreamError(`cannot reach the manager at ${opts.manager} (${tlsErrorHint(err) ?? err?.code ?? err?.message ?? err})`, { cause: err })
    }
    const text = await res.body.text()
    let json: any
    try {
      json = text === '' ? {} : JSON.parse(text)
    } catch {
      throw new UpstreamError(`manager answered ${res.statusCode} with a body that is not JSON`)
    }
    if (res.statusCode >= 400) {
      throw statusError(res.statusCode, json?.error?.message ?? `manager answered ${res.statusCode}`)
    }
    return json
  } finally {
    await dispatcher?.close()
  }
}
