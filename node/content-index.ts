/**
 * Which contents this node holds: the manifests found among its blobs. It is
 * derived from the blob store (no state file of its own), so it can never
 * disagree with what is on disk after a restart.
 */
import type { CID } from 'multiformats/cid'
import { describeError, NotFoundError } from '../core/errors.ts'
import { MANIFEST_CODEC, parseBlobId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { decodeManifest } from '../core/manifest.ts'
import type { BlobStore } from './blob-store.ts'

export interface ContentIndexComponents {
  store: Pick<BlobStore, 'list' | 'read' | 'has'>
  logger: Logger
}

/** The `/have` answer (PROTOCOLS.md): bit i set when chunk i is held. */
export interface HaveBitmap {
  content: string
  chunks: number
  bitmap: string
}

export class ContentIndex {
  private readonly store: ContentIndexComponents['store']
  private readonly log: Logger
  /** held content id → its chunk ids in canonical form (the store's keys); the rest of a manifest is not needed here */
  private readonly chunkIds = new Map<string, string[]>()
  /** chunk id → the held contents it belongs to (usually one) */
  private readonly owners = new Map<string, Set<string>>()

  constructor (components: ContentIndexComponents) {
    this.store = components.store
    this.log = components.logger
  }

  /** Indexes every manifest blob in the store; blobs that do not decode as manifests are logged and skipped. */
  async load (): Promise<void> {
    for (const { cid } of this.store.list()) {
      if (cid.code !== MANIFEST_CODEC) continue
      try {
        await this.add(cid)
      } catch (err) {
        this.log.warn({ content: cid.toString(), err: describeError(err) }, 'held manifest blob could not be indexed')
      }
    }
    this.log.info({ contents: this.chunkIds.size }, 'content index loaded')
  }

  /** Indexes a content whose manifest blob is held. NotFoundError when it is not; BadInputError when it is no manifest. */
  async add (contentId: CID): Promise<void> {
    const key = contentId.toString()
    if (this.chunkIds.has(key)) return
    if (contentId.code !== MANIFEST_CODEC || !this.store.has(contentId)) {
      throw new NotFoundError(`manifest ${key} is not held here`)
    }
    const manifest = decodeManifest(await this.store.read(contentId))
    // Another add of the same content may have finished while we read.
    if (this.chunkIds.has(key)) return
    const chunks = manifest.chunks.map(c => parseBlobId(c).toString())
    this.chunkIds.set(key, chunks)
    for (const chunk of chunks) {
      let set = this.owners.get(chunk)
      if (set == null) this.owners.set(chunk, set = new Set())
      set.add(key)
    }
  }

  /** Forgets a content; true when it was indexed. */
  remove (contentId: CID | string): boolean {
    const key = contentId.toString()
    const chunks = this.chunkIds.get(key)
    if (chunks == null) return false
    this.chunkIds.delete(key)
    for (const chunk of chunks) {
      const set = this.owners.get(chunk)
      set?.delete(key)
      if (set?.size === 0) this.owners.delete(chunk)
    }
    return true
  }

  has (contentId: CID | string): boolean {
    return this.chunkIds.has(contentId.toString())
  }

  /** Chunk ids of a held content, in order. */
  chunksOf (contentId: CID | string): readonly string[] | undefined {
    return this.chunkIds.get(contentId.toString())
  }

  get size (): number {
    return this.chunkIds.size
  }

  /** Ids of every indexed content. */
  contents (): string[] {
    return [...this.chunkIds.keys()]
  }

  /** The contents a blob counts for: the content itself for a manifest, the owners of a chunk. */
  contentsOf (blobId: CID | string): string[] {
    const key = blobId.toString()
    if (this.chunkIds.has(key)) return [key]
    const set = this.owners.get(key)
    return set == null ? [] : [...set]
  }

  /** True when some indexed content needs this blob (as its manifest or one of its chunks). */
  isReferenced (blobId: CID | string): boolean {
    const key = blobId.toString()
    return this.chunkIds.has(key) || this.owners.has(key)
  }

  /** Which chunks of a content are held, or undefined when the content is not indexed. */
  have (contentId: CID | string): HaveBitmap | undefined {
    const key = contentId.toString()
    const chunks = this.chunkIds.get(key)
    if (chunks == null) return undefined
    const n = chunks.length
    const bits = new Uint8Array(Math.ceil(n / 8))
    for (let i = 0; i < n; i++) {
      if (this.store.has(chunks[i])) bits[i >> 3] |= 0x80 >> (i & 7)
    }
    return { content: key, chunks: n, bitmap: Buffer.from(bits).toString('base64') }
  }
}
