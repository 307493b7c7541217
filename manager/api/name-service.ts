/**
 * Names and generations on the manager's side: a publish under a name
 * (`x-cdn-publish-name`, `x-cdn-keep`) is an ordinary publish, and once it
 * is visible a generation is appended; generations beyond the name's keep
 * go through the normal delete path. Name records, signed by the pool
 * identity, tell proxies where a name points.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { PrivateKey } from '@libp2p/interface'
import { BadInputError, describeError, ForbiddenError, NotFoundError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import { parseName } from '../../core/names.ts'
import { signRecord, type NameRecordBody } from '../../core/signed-record.ts'
import type { Principal } from '../catalog/tokens.ts'
import type { GenerationRow, NameStore } from '../catalog/names.ts'
import type { LineageStore } from '../catalog/lineage.ts'
import type { ContentDeleter } from '../publish/delete.ts'
import { mayUseOwned } from './access.ts'
import { intHeader, singleHeader } from './wire.ts'

/** A name record is good for 30 days: a proxy cut off from the manager stops believing it then. */
export const NAME_RECORD_TTL_MS = 30 * 24 * 3600_000
/** More generations than anyone keeps by hand; beyond, `--keep` is a typo. */
export const MAX_KEEP = 1_000_000

export interface NameServiceComponents {
  names: NameStore
  /** the names' lineage keys: a publish under a name claims it (and its key) before a byte is read */
  lineage?: Pick<LineageStore, 'claim'>
  deleter: Pick<ContentDeleter, 'delete'>
  /** the pool's identity, which signs name records */
  signer: { privateKey: PrivateKey, peerId: string }
  logger: Logger
  /** ms since the epoch (default Date.now) */
  now?: () => number
}

/** What a publish request asks of names. */
export interface NamedPublish {
  name: string
  keep?: number
  /** the name's lineage key, when the name was claimed */
  lineageKey?: Uint8Array
}

export interface SignedName {
  record: string
  seq: number
  content: string
}

/** An admin may add to any name (as it may delete any content); a publisher only to its own. */
function mayAppend (who: Principal): (owner: string) => boolean {
  return owner => mayUseOwned(owner, who)
}

export class NameService {
  private readonly c: NameServiceComponents
  private readonly now: () => number

  constructor (components: NameServiceComponents) {
    this.c = components
    this.now = components.now ?? Date.now
  }

  /**
   * Reads the name headers of a publish and refuses, before a byte is
   * uploaded, a publisher that does not own the name (403). Undefined when
   * the publish names nothing.
   */
  async beforePublish (headers: IncomingHttpHeaders, who: Principal): Promise<NamedPublish | undefined> {
    const raw = singleHeader(headers, 'x-cdn-publish-name')
    const keep = intHeader(headers, 'x-cdn-keep')
    if (raw == null) {
      if (keep != null) throw new BadInputError('x-cdn-keep needs x-cdn-publish-name')
      return undefined
    }
    let decoded: string
    try {
      decoded = decodeURIComponent(raw)
    } catch (err) {
      throw new BadInputError('header x-cdn-publish-name must be URL-encoded', { cause: err })
    }
    const name = parseName(decoded)
    if (keep != null && (keep < 1 || keep > MAX_KEEP)) throw new BadInputError(`x-cdn-keep must be from 1 to ${MAX_KEEP}`)
    if (this.c.lineage != null) return { name, keep, lineageKey: await this.c.lineage.claim(name, who.id, mayAppend(who), this.now()) }
    const found = await this.c.names.get(name)
    if (found != null && !mayAppend(who)(found.owner)) throw new ForbiddenError(`the name ${name} belongs to another publisher`)
    return { name, keep }
  }

  /**
   * Appends the visible content as the name's next generation, then deletes
   * the contents of generations beyond keep. If another publisher claimed
   * the name meanwhile, the content just published is deleted and the
   * publish refused (403): nothing is left behind that nobody asked for.
   */
  async afterPublish (named: Pick<NamedPublish, 'name' | 'keep'>, content: { id: string, size: number, added?: number }, who: Principal): Promise<{ name: string, seq: number, pruned: number }> {
    let appended
    try {
      appended = await this.c.names.append({ name: named.name, by: who.id, mayAppend: mayAppend(who), content: content.id, size: content.size, added: content.added, keep: named.keep, now: this.now() })
    } catch (err) {
      if (err instanceof ForbiddenError) await this.c.deleter.delete(content.id, who.id)
      throw err
    }
    this.c.logger.info({ name: named.name, seq: appended.seq, content: content.id, by: who.id }, 'generation added')
    const pruned = await this.prune(appended.beyondKeep, who.id)
    return { name: named.name, seq: appended.seq, pruned }
  }

  /** The signed record of a name's newest generation (its content may be private: the caller checks access). */
  async record (latest: GenerationRow): Promise<SignedName> {
    const iat = this.now()
    const body: NameRecordBody = { kind: 'name-record', iss: this.c.signer.peerId, iat, exp: iat + NAME_RECORD_TTL_MS, name: latest.name, seq: latest.seq, content: latest.content }
    return { record: await signRecord(body, this.c.signer.privateKey), seq: latest.seq, content: latest.content }
  }

  /**
   * Deletes each generation's content (a content already gone counts as
   * deleted), then forgets the generation. One that fails stays recorded,
   * and the next publish under the name tries again.
   */
  private async prune (beyond: GenerationRow[], by: string): Promise<number> {
    let done = 0
    for (const g of beyond) {
      try {
        await this.c.deleter.delete(g.content, by).catch((err: unknown) => {
          if (!(err instanceof NotFoundError)) throw err
        })
        await this.c.names.drop(g.name, g.seq)
        done++
      } catch (err) {
        this.c.logger.warn({ name: g.name, seq: g.seq, content: g.content, err: describeError(err) }, 'could not delete a generation beyond keep; retried on the next publish')
      }
    }
    return done
  }
}
