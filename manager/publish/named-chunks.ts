/**
 * The chunks of a streamed publish under a name (`x-cdn-publish-name`), as
 * they pass: each is keyed by its plaintext within the name's lineage
 * (core/chunk-keys.ts), a chunk the name already holds with R copies is
 * counted rather than stored again, and a chunk seen earlier in the same
 * upload is not sent twice. Once the upload's copies are confirmed, the new
 * chunks join the lineage's index for later generations.
 */
import { chunkKeyOf, chunkTags, encryptWithChunkKey, plaintextHash, sealChunkKeys } from '../../core/chunk-keys.ts'
import type { CID } from 'multiformats/cid'
import { chunkCid } from '../../core/ids.ts'
import type { LineageStore } from '../catalog/lineage.ts'
import { adoptHeldChunks, type HeldChunksComponents } from './held-chunks.ts'

export interface NamedChunksComponents extends Pick<HeldChunksComponents, 'catalog'> {
  lineage?: Pick<LineageStore, 'lookup' | 'record'>
}

export class NamedChunks {
  private readonly name: string
  private readonly key: Uint8Array
  private readonly upload: string
  private readonly replicas: number
  /** every chunk's tag, in order: the manifest's keys are drawn from them */
  private readonly tags: string[] = []
  /** chunks this upload stores, by tag */
  private readonly fresh = new Map<string, { cid: string, size: number }>()

  constructor (lineage: { name: string, key: Uint8Array }, upload: string, replicas: number) {
    this.name = lineage.name
    this.key = lineage.key
    this.upload = upload
    this.replicas = replicas
  }

  /** Tags the chunk; with its blob id when it need not be stored (the name or this upload already has it). */
  async held (c: NamedChunksComponents, bytes: Uint8Array): Promise<{ tag: string, cid?: string }> {
    const tag = chunkTags(this.key, [plaintextHash(bytes)])[0]
    this.tags.push(tag)
    const mine = this.fresh.get(tag)
    if (mine != null) return { tag, cid: mine.cid }
    if (c.lineage == null) return { tag }
    const { missing, cids } = await adoptHeldChunks({ catalog: c.catalog, lineage: c.lineage }, this.name, this.upload, [tag], this.replicas)
    return missing.length === 0 ? { tag, cid: cids[0] } : { tag }
  }

  /** Encrypts a chunk `held` tagged and found missing, and remembers it as this upload's own. */
  encrypt (tag: string, bytes: Uint8Array): { blob: Uint8Array, cid: CID } {
    const blob = encryptWithChunkKey(chunkKeyOf(this.key, tag), bytes)
    const cid = chunkCid(blob)
    this.fresh.set(tag, { cid: cid.toString(), size: bytes.length })
    return { blob, cid }
  }

  /** The manifest's chunk keys, sealed under the content key. */
  sealedKeys (contentKey: Uint8Array): string {
    return sealChunkKeys(contentKey, this.tags.map(t => chunkKeyOf(this.key, t)))
  }

  /** Adds the chunks this upload stored to the lineage's index (call once their copies are confirmed). */
  async record (c: NamedChunksComponents): Promise<void> {
    if (c.lineage == null) return
    for (const [tag, { cid, size }] of this.fresh) await c.lineage.record(this.name, { tag, cid, size })
  }
}
