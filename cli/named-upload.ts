/**
 * The client of an upload session (docs/PROTOCOLS.md, "Upload sessions"):
 * announce a file's chunks, send only those the manager is missing, then
 * commit the generation. Every step survives an interruption: running it
 * again finds the session, and the manager no longer lists what was stored.
 *
 * A chunk PUT is idempotent, so one that failed without a final answer
 * (connection error, timeout, 502/503/504) is sent again, to the next
 * manager of the pool too. The plan and the commit are POSTs: they follow
 * callManager's rule and go elsewhere only when they surely never arrived.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { plaintextHash } from '../core/chunk-keys.ts'
import { BadInputError, UpstreamError } from '../core/errors.ts'
import { FAILOVER_STATUSES } from '../core/manager-failover.ts'
import type { FileChunk } from './file-chunks.ts'
import { callManager, managerAnswer, managerRing, type ApiOptions } from './manager-api.ts'

export interface UploadPlan {
  /** in file order, tiling the file */
  chunks: readonly FileChunk[]
  /** the name shown to viewers (as `x-cdn-name`) */
  file: string
  type: string
  replicas?: number
  private?: boolean
  keep?: number
  ttlSeconds?: number
}

/** ms per call; the commit waits for R confirmed copies of every chunk, as a whole publish does. */
export interface UploadTimeouts { open: number, put: number, commit: number }
export const UPLOAD_TIMEOUTS: Readonly<UploadTimeouts> = Object.freeze({ open: 10 * 60_000, put: 5 * 60_000, commit: 6 * 3600_000 })

export interface NamedUploadOptions {
  /** managers, token, CA and the caller's signal */
  api: ApiOptions
  /** the plaintext of a chunk, read from the file when it is about to be sent */
  readChunk: (chunk: FileChunk, signal: AbortSignal) => Promise<Uint8Array>
  /** the session is open: what must be sent */
  onOpen?: (s: { missingChunks: number, missingBytes: number, resumed: boolean }) => void
  /** a chunk was acknowledged */
  onSent?: (bytes: number) => void
  /** chunks sent at once (default 8: each waits for its copies, so the pipeline's depth sets the pace; 4 → 8 was 7% faster on one machine, 16 hardly more) */
  parallel?: number
  /** tries per chunk before giving up (default 5) */
  attempts?: number
  /** first pause between tries, doubled each time (default 500 ms) */
  retryDelayMs?: number
  timeouts?: Partial<UploadTimeouts>
}

export interface NamedUploadResult {
  /** the commit's answer: that of a named `POST /api/publish` */
  published: any
  /** plaintext bytes this run sent */
  uploadedBytes: number
  /** chunks of the file this run did not send: the pool held them already */
  reusedChunks: number
  resumed: boolean
}

interface Session { upload: string, missing: number[], resumed: boolean }

/** Commits answered 409 with chunks to send before giving up: each round sends what the manager lists. */
const COMMIT_ROUNDS = 3
const MAX_RETRY_DELAY_MS = 8000

export async function uploadNamed (name: string, plan: UploadPlan, opts: NamedUploadOptions): Promise<NamedUploadResult> {
  const api: ApiOptions = { ...opts.api, manager: managerRing(opts.api.manager) }
  const timeouts = { ...UPLOAD_TIMEOUTS, ...opts.timeouts }
  const uploads = `/api/names/${encodeURIComponent(name)}/uploads`
  const session = await openSession(api, uploads, plan, timeouts.open)
  const at = `${uploads}/${encodeURIComponent(session.upload)}`
  opts.onOpen?.({ missingChunks: session.missing.length, missingBytes: bytesOf(plan, session.missing), resumed: session.resumed })
  const sent = new Set<number>()
  let uploadedBytes = 0
  const send = async (indexes: readonly number[]): Promise<void> => {
    await sendChunks(indexes, async (chunk, signal) => {
      await sendChunk(api, at, chunk, signal, opts, timeouts.put)
      sent.add(chunk.index)
      uploadedBytes += chunk.size
      opts.onSent?.(chunk.size)
    }, plan, opts)
  }
  await send(session.missing)
  for (let round = 1; ; round++) {
    try {
      const published = await callManager({ ...api, timeout: timeouts.commit }, 'POST', `${at}/commit`)
      return { published, uploadedBytes, reusedChunks: plan.chunks.length - sent.size, resumed: session.resumed }
    } catch (err) {
      const missing = missingOf(err, plan.chunks.length)
      if (missing == null || round >= COMMIT_ROUNDS) throw err
      await send(missing)
    }
  }
}

async function openSession (api: ApiOptions, uploads: string, plan: UploadPlan, timeout: number): Promise<Session> {
  const request = {
    chunks: plan.chunks.map(c => ({ hash: c.hash, size: c.size })),
    file: plan.file,
    type: plan.type,
    ...(plan.replicas != null ? { replicas: plan.replicas } : {}),
    ...(plan.private === true ? { private: true } : {}),
    ...(plan.keep != null ? { keep: plan.keep } : {}),
    ...(plan.ttlSeconds != null ? { ttlSeconds: plan.ttlSeconds } : {})
  }
  const res = await callManager({ ...api, timeout }, 'POST', uploads, { data: JSON.stringify(request), headers: { 'content-type': 'application/json' } })
  const missing = indexList(res?.missing, plan.chunks.length)
  if (typeof res?.upload !== 'string' || res.upload === '' || missing == null) {
    throw new UpstreamError('the manager answered the upload plan without a session id or a valid list of missing chunks')
  }
  return { upload: res.upload, missing, resumed: res.resumed === true }
}

/** Valid chunk indexes, each once, in order; null when the value is not such a list. */
function indexList (value: unknown, count: number): number[] | null {
  if (!Array.isArray(value)) return null
  if (!value.every(i => Number.isSafeInteger(i) && i >= 0 && i < count)) return null
  return [...new Set(value as number[])].sort((a, b) => a - b)
}

/** The chunks a 409 `ERR_MISSING_CHUNKS` lists (in its body or its error object); null for any other error. */
function missingOf (err: unknown, count: number): number[] | null {
  const answer = managerAnswer(err)
  const body = answer?.body
  if (answer?.status !== 409 || (body?.error?.code ?? body?.code) !== 'ERR_MISSING_CHUNKS') return null
  return indexList(body.missing ?? body.error?.missing, count)
}

function bytesOf (plan: UploadPlan, indexes: readonly number[]): number {
  return indexes.reduce((sum, i) => sum + plan.chunks[i].size, 0)
}

/**
 * Sends the chunks `parallel` at a time. The first failure stops the rest
 * (their calls are aborted) and is what the caller sees, once every worker
 * has stopped: nothing keeps reading the file after this returns.
 */
async function sendChunks (indexes: readonly number[], send: (chunk: FileChunk, signal: AbortSignal) => Promise<void>, plan: UploadPlan, opts: NamedUploadOptions): Promise<void> {
  const stop = new AbortController()
  const signal = opts.api.signal != null ? AbortSignal.any([opts.api.signal, stop.signal]) : stop.signal
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (next < indexes.length && !signal.aborted) {
      const chunk = plan.chunks[indexes[next++]]
      try {
        await send(chunk, signal)
      } catch (err) {
        failure ??= { error: opts.api.signal?.aborted === true ? opts.api.signal.reason : err }
        stop.abort()
      }
    }
  }
  const workers = Math.max(1, Math.min(opts.parallel ?? 8, indexes.length))
  await Promise.all(Array.from({ length: workers }, worker))
  if (failure != null) throw failure.error
  if (opts.api.signal?.aborted === true) throw opts.api.signal.reason
}

async function sendChunk (api: ApiOptions, at: string, chunk: FileChunk, signal: AbortSignal, opts: NamedUploadOptions, timeout: number): Promise<void> {
  const bytes = await opts.readChunk(chunk, signal)
  if (bytes.length !== chunk.size || Buffer.from(plaintextHash(bytes)).toString('hex') !== chunk.hash) {
    throw new BadInputError(`the file changed while it was being published (chunk ${chunk.index} at byte ${chunk.offset} no longer has the bytes hashed before); run the command again`)
  }
  const body = { data: bytes, headers: { 'content-type': 'application/octet-stream', 'content-length': String(chunk.size) } }
  const attempts = opts.attempts ?? 5
  let pause = opts.retryDelayMs ?? 500
  for (let attempt = 1; ; attempt++) {
    try {
      await callManager({ ...api, signal, timeout }, 'PUT', `${at}/chunks/${chunk.index}`, body)
      return
    } catch (err) {
      if (signal.aborted || !retryable(err)) throw err
      if (attempt >= attempts) throw new UpstreamError(`chunk ${chunk.index} could not be sent (${attempts} tries)`, { cause: err })
      await sleep(pause, undefined, { signal })
      pause = Math.min(pause * 2, MAX_RETRY_DELAY_MS)
    }
  }
}

/** No answer at all, or a manager that cannot serve now: worth sending the same PUT again. */
function retryable (err: unknown): boolean {
  const answer = managerAnswer(err)
  return err instanceof UpstreamError && (answer == null || FAILOVER_STATUSES.has(answer.status))
}
