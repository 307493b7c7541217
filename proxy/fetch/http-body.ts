import type { Readable } from 'node:stream'
import { UpstreamError } from '../../core/errors.ts'

/**
 * Drops a response body we will not read. undici reports destroying an
 * unfinished body as an 'error' event; the caller is already throwing its
 * own, better error, so that one has nowhere useful to go.
 */
export function discardBody (body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}

/** Reads a small response body (JSON answers, error messages), refusing more than `limit` bytes. */
export async function readSmallBody (body: Readable, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let size = 0
  for await (const piece of body) {
    size += (piece as Buffer).length
    // Throwing out of the loop destroys the body through its iterator.
    if (size > limit) throw new UpstreamError(`${what}: answer over ${limit} bytes`)
    parts.push(piece as Buffer)
  }
  return Buffer.concat(parts)
}

export async function readJson (body: Readable, limit: number, what: string): Promise<unknown> {
  const bytes = await readSmallBody(body, limit, what)
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new UpstreamError(`${what}: answer is not JSON`, { cause: err })
  }
}

/**
 * The message of a `{ error: { code, message } }` answer (PROTOCOLS.md), or
 * the start of whatever text came instead; never throws, since it runs while
 * another error is being reported.
 */
export async function errorMessageOf (body: Readable, statusCode: number): Promise<{ code?: string, message: string }> {
  let text = ''
  try {
    text = (await readSmallBody(body, 64 * 1024, 'error answer')).toString('utf8')
    const parsed = JSON.parse(text) as { error?: { code?: unknown, message?: unknown } }
    if (typeof parsed?.error?.message === 'string') {
      return { code: typeof parsed.error.code === 'string' ? parsed.error.code : undefined, message: parsed.error.message }
    }
  } catch {
    // Not JSON (or too long): fall through to the raw text, which is all we have.
  }
  return { message: text.trim().slice(0, 200) || `HTTP ${statusCode}` }
}
