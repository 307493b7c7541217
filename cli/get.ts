import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { once } from 'node:events'
import { BadInputError, InterruptedError } from '../core/errors.ts'
import { parseContentId } from '../core/ids.ts'
import { decodeKey } from '../core/chunk-crypto.ts'
import { parseCapability } from '../proxy/capability.ts'
import { createFetchClient } from '../proxy/client.ts'
import type { Logger } from '../core/log.ts'
import { byteProgress } from './progress.ts'
import { isBlobId, parseName } from '../core/names.ts'
import type { ApiOptions } from './manager-api.ts'
import { pickGeneration, versions } from './names.ts'

export interface GetOptions {
  /** the manager's API URL, or several managers of one pool, tried in turn */
  manager: string | readonly string[]
  output: string
  json: boolean
  logger: Logger
  ca?: Buffer
  /** for a name: the generation (number or ISO time), listed with `api`'s token */
  at?: string
  api?: ApiOptions
}

/**
 * Accepts a bare content id, a key link `cdn://<id>?k=<key>` or a capability
 * link `cdn://<id>?cap=<capability>`. Errors never repeat the link: it is a secret.
 */
export function parseTarget (target: string): { id: string, key?: Uint8Array, capability?: string } {
  if (target.startsWith('cdn://')) {
    let url: URL
    try {
      url = new URL(target)
    } catch (err) {
      throw new BadInputError('invalid cdn:// link: expected cdn://<id>?cap=<capability> or cdn://<id>?k=<key>', { cause: err })
    }
    const id = parseContentId(url.hostname).toString()
    const k = url.searchParams.get('k')
    const cap = url.searchParams.get('cap')
    return { id, key: k == null ? undefined : decodeKey(k), capability: cap == null ? undefined : parseCapability(cap) }
  }
  return { id: parseContentId(target).toString() }
}

/** A name rather than an id or a link: anything that is not a content id. */
export function isNameTarget (target: string): boolean {
  return !target.startsWith('cdn://') && !isBlobId(target)
}

/** The content id a name points at: its newest generation (a verified record), or the one `--at` picks. */
async function idOfName (name: string, opts: GetOptions, client: { names: { resolve: (n: string, o: { signal: AbortSignal }) => Promise<{ content: string }> } }, signal: AbortSignal): Promise<string> {
  if (opts.at == null) return (await client.names.resolve(name, { signal })).content
  if (opts.api == null) throw new BadInputError('--at needs the manager and a token (--token-file)')
  return pickGeneration((await versions(opts.api, name)).generations, opts.at).content
}

export interface GetResult { id: string, file: string, size: number, name: string, type: string, sources: Record<string, number> }

/**
 * Downloads into a temporary file beside the target and renames it only once
 * every byte is verified, so a failed get never leaves a truncated file.
 */
export async function get (target: string, opts: GetOptions): Promise<GetResult> {
  const named = isNameTarget(target) ? parseName(target) : undefined
  if (named == null && opts.at != null) throw new BadInputError('--at picks a generation of a name; an id is one content already')
  const parsed = named == null ? parseTarget(target) : undefined
  const { key, capability } = parsed ?? {}
  const client = await createFetchClient({ managerUrl: opts.manager, ca: opts.ca, logger: opts.logger })
  const tmp = `${opts.output}.part-${process.pid}`
  const ac = new AbortController()
  const onSignal = (): void => { ac.abort(new InterruptedError()) }
  process.once('SIGINT', onSignal)
  let bar = byteProgress('get', 0, false)
  let sources: Record<string, number> = {}
  try {
    const id = parsed?.id ?? await idOfName(named!, opts, client, ac.signal)
    const content = await client.engine.open(id, {
      key,
      capability,
      signal: ac.signal,
      onProgress: (p) => { sources = p.sources; bar.update(p.done) }
    })
    bar = byteProgress('get', content.size, !opts.json)
    const out = createWriteStream(tmp)
    try {
      for await (const piece of content.body) {
        if (!out.write(piece)) await once(out, 'drain')
      }
      out.end()
      await once(out, 'finish')
    } catch (err) {
      out.destroy()
      throw err
    }
    await rename(tmp, opts.output)
    return { id, file: opts.output, size: content.size, name: content.metadata.name, type: content.metadata.type, sources }
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  } finally {
    bar.stop()
    process.off('SIGINT', onSignal)
    await client.close()
  }
}
