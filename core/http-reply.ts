import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadInputError, CdnError, TooLargeError } from './errors.ts'

/** Every JSON API answer goes through here, so status codes and headers stay uniform. */
export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers })
  res.end(text)
}

/** Maps an error to `{ error: { code, message } }` with its status; unknown errors are 500 and logged by the caller. */
export function sendError (res: ServerResponse, err: unknown): void {
  const status = err instanceof CdnError ? err.status : 500
  const code = err instanceof CdnError ? err.code : 'ERR_INTERNAL'
  const message = err instanceof Error ? err.message : String(err)
  if (res.headersSent) {
    res.destroy(err instanceof Error ? err : undefined)
    return
  }
  const details = err instanceof CdnError ? err.details : undefined
  sendJson(res, status, { error: { ...details, code, message } })
}

/** Reads a small JSON request body, refusing bodies over `limit` bytes and non-JSON. */
export async function readJsonBody (req: IncomingMessage, limit = 1024 * 1024): Promise<unknown> {
  const parts: Buffer[] = []
  let size = 0
  for await (const piece of req) {
    size += (piece as Buffer).length
    if (size > limit) throw new TooLargeError(`request body over ${limit} bytes`)
    parts.push(piece as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'))
  } catch (err) {
    throw new BadInputError('request body is not valid JSON', { cause: err })
  }
}
