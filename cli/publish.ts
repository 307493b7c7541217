import { createReadStream } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import { Transform } from 'node:stream'
import { BadInputError, CdnError, UpstreamError } from '../core/errors.ts'
import { callManager, managerRing, type ApiOptions } from './manager-api.ts'
import { planFile, type FileChunk } from './file-chunks.ts'
import { uploadNamed } from './named-upload.ts'
import { byteProgress, type Progress } from './progress.ts'

export interface PublishOptions extends ApiOptions {
  replicas?: number
  /** cut by content ('cdc') or at fixed offsets; default: the manager's choice, or 'cdc' under a name (cut here) */
  chunking?: 'fixed' | 'cdc'
  name?: string
  type?: string
  proxy: string
  json: boolean
  /** ms after publication at which the content is deleted everywhere */
  ttlMs?: number
  /** resolvable only with a capability (cdn share) or a token that may read it */
  private?: boolean
  /** publish as the next generation of this stable name, by upload session (only the chunks the pool lacks are sent) */
  publishName?: string
  /** the name keeps its newest N generations (`x-cdn-keep`) */
  keep?: number
}

const MEDIA_TYPES: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.mov': 'video/quicktime',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.opus': 'audio/ogg',
  '.wav': 'audio/wav',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.html': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.iso': 'application/octet-stream'
}

export function mediaTypeOf (file: string): string {
  return MEDIA_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream'
}

/** `link` carries the key for a public content; a private one's link and url need a capability (`cdn share`). */
export interface PublishResult {
  id: string
  url: string
  link: string
  size: number
  chunks: number
  replicas: number
  private: boolean
  expiresAt?: string
  name?: string
  seq?: number
  /** under a name: plaintext bytes this run sent, and the chunks it did not send because the pool held them */
  uploadedBytes?: number
  reusedChunks?: number
}

export async function publish (file: string, opts: PublishOptions): Promise<PublishResult> {
  if (opts.token == null || opts.token === '') throw new BadInputError('a publisher token is needed: --token-file FILE or CDN_TOKEN')
  const size = await fileSize(file)
  if (opts.publishName != null) return await publishNamed(file, size, opts.publishName, opts)
  const bar = byteProgress('publish', size, !opts.json)
  let sent = 0
  const counter = new Transform({
    transform (piece: Buffer, _enc, done) {
      sent += piece.length
      bar.update(sent, sent >= size ? '(confirming copies)' : '')
      done(null, piece)
    }
  })
  const headers: Record<string, string> = {
    'content-type': opts.type ?? mediaTypeOf(file),
    'content-length': String(size),
    'x-cdn-name': encodeURIComponent(opts.name ?? basename(file))
  }
  if (opts.replicas != null) headers['x-cdn-replicas'] = String(opts.replicas)
  if (opts.ttlMs != null) headers['x-cdn-ttl'] = String(ttlSeconds(opts.ttlMs))
  if (opts.private === true) headers['x-cdn-private'] = '1'
  if (opts.chunking != null) headers['x-cdn-chunking'] = opts.chunking
  try {
    const target = await uploadTarget(opts)
    const body = createReadStream(file).pipe(counter)
    const res = await upload(target.url, target.several, { token: opts.token, ca: opts.ca }, { data: body, headers })
    return publishResult(res, opts)
  } finally {
    bar.stop()
  }
}

async function fileSize (file: string): Promise<number> {
  try {
    const st = await stat(file)
    if (!st.isFile()) throw new BadInputError(`${file} is not a regular file`)
    return st.size
  } catch (err: any) {
    if (err instanceof BadInputError) throw err
    throw new BadInputError(`cannot read ${file}: ${err?.code === 'ENOENT' ? 'no such file' : err?.message}`)
  }
}

const ttlSeconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000))

/** The manager's answer to a publish (streamed or committed), as the command prints it. */
function publishResult (res: any, opts: PublishOptions): PublishResult {
  const id = String(res.id)
  const priv = opts.private === true
  return {
    id,
    url: new URL(`/c/${id}`, opts.proxy).toString(),
    // A private content's key is not printed: whoever sees the terminal would hold it for good.
    link: priv ? `cdn://${id}` : `cdn://${id}?k=${String(res.key)}`,
    private: priv,
    size: Number(res.size),
    chunks: Number(res.chunks),
    replicas: Number(res.replicas),
    ...(res.expiresAt != null ? { expiresAt: String(res.expiresAt) } : {}),
    ...(res.seq != null ? { name: String(res.name), seq: Number(res.seq) } : {})
  }
}

/**
 * A publish under a name, by upload session (named-upload.ts): the file is
 * read once to cut and hash it, then again, by offset, only for the chunks
 * the manager is missing.
 */
async function publishNamed (file: string, size: number, name: string, opts: PublishOptions): Promise<PublishResult> {
  const chunks = await hashFile(file, size, opts)
  const handle = await open(file, 'r')
  let bar: Progress | undefined
  try {
    let sent = 0
    let total = 0
    const plan = {
      chunks,
      file: opts.name ?? basename(file),
      type: opts.type ?? mediaTypeOf(file),
      replicas: opts.replicas,
      private: opts.private,
      keep: opts.keep,
      ttlSeconds: opts.ttlMs != null ? ttlSeconds(opts.ttlMs) : undefined
    }
    const r = await uploadNamed(name, plan, {
      api: opts,
      readChunk: async (chunk) => await readChunkAt(handle, chunk),
      onOpen: (s) => {
        total = s.missingBytes
        bar = byteProgress(s.resumed ? 'upload (resumed)' : 'upload', total, !opts.json)
      },
      onSent: (bytes) => {
        sent += bytes
        bar?.update(sent, sent >= total ? '(publishing)' : '')
      }
    })
    return { ...publishResult(r.published, opts), uploadedBytes: r.uploadedBytes, reusedChunks: r.reusedChunks }
  } finally {
    bar?.stop()
    await handle.close()
  }
}

async function hashFile (file: string, size: number, opts: PublishOptions): Promise<FileChunk[]> {
  const bar = byteProgress('hashing', size, !opts.json)
  try {
    return await planFile(file, { mode: opts.chunking, signal: opts.signal, onProgress: (done) => { bar.update(done) } })
  } catch (err: any) {
    if (err instanceof CdnError || opts.signal?.aborted === true) throw err
    throw new BadInputError(`cannot read ${file}: ${err?.message ?? err}`, { cause: err })
  } finally {
    bar.stop()
  }
}

/** One chunk's bytes, read at its offset (shorter if the file shrank since it was hashed: the caller checks). */
async function readChunkAt (handle: FileHandle, chunk: FileChunk): Promise<Uint8Array> {
  const bytes = Buffer.allocUnsafe(chunk.size)
  let done = 0
  while (done < chunk.size) {
    const { bytesRead } = await handle.read(bytes, done, chunk.size - done, chunk.offset + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return bytes.subarray(0, done)
}

/**
 * The manager the upload goes to: with several, the first that answers
 * `GET /api/info`, starting with the one that answered last, so a dead one
 * is skipped before a byte of the file is read. With one, no probe: it is
 * called exactly as before several managers.
 */
async function uploadTarget (opts: ApiOptions): Promise<{ url: string, several: boolean }> {
  const ring = managerRing(opts.manager)
  if (ring.urls.length === 1) return { url: ring.current, several: false }
  await callManager({ manager: ring, ca: opts.ca, signal: opts.signal, timeout: 10_000 }, 'GET', '/api/info')
  return { url: ring.current, several: true }
}

/**
 * A publish is bound to the manager that receives it: an upload that fails
 * halfway is never sent again to another (its bytes are gone, and the
 * manager may have published it). Given several managers, the error says
 * which one failed; a refusal (4xx) is that manager's answer, shown as is.
 */
async function upload (url: string, several: boolean, auth: { token?: string, ca?: Buffer }, body: { data: any, headers: Record<string, string> }): Promise<any> {
  try {
    return await callManager({ manager: url, ...auth, timeout: 6 * 3600_000 }, 'POST', '/api/publish', body)
  } catch (err) {
    if (!several || (err instanceof CdnError && err.status >= 400 && err.status < 500)) throw err
    const message = err instanceof Error ? err.message : String(err)
    throw new UpstreamError(`the upload to the manager at ${url} failed, and is not sent again to another manager: ${message}`, { cause: err })
  }
}
