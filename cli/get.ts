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

export interface GetOptions {
  /** the manager's API URL, or several managers of one pool, tried in turn */
  manager: string | readonly string[]
  output: string
  json: boolean
  logger: Logger
  ca?: Buffer
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

export interface GetResult { id: string, file: string, size: number, name: string, type: string, sources: Record<string, number> }

/**
 * Downloads into a temporary file beside the target and renames it only once
 * every byte is verified, so a failed get never leaves a truncated file.
 */
export async function get (target: string, opts: GetOptions): Promise<GetResult> {
  const { id, key, capability } = parseTarget(target)
  const client = await createFetchClient({ managerUrl: opts.manager, ca: opts.ca, logger: opts.logger })
  const tmp = `${opts.output}.part-${process.pid}`
  const ac = new AbortController()
  const onSignal = (): void => { ac.abort(new InterruptedError()) }
  process.once('SIGINT', onSignal)
  let bar = byteProgress('get', 0, false)
  let sources: Record<string, number> = {}
  try {
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
