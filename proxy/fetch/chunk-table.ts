import type { CID } from 'multiformats/cid'
import { TAG_BYTES } from '../../core/chunk-crypto.ts'
import { parseBlobId } from '../../core/ids.ts'
import { chunkLength, type Manifest } from '../../core/manifest.ts'

/** A manifest's chunks as a read needs them: blob ids parsed once, sizes on the wire and in plaintext. */
export class ChunkTable {
  private readonly manifest: Manifest
  private readonly cids: Array<CID | undefined>

  constructor (manifest: Manifest) {
    this.manifest = manifest
    this.cids = new Array(manifest.chunks.length)
  }

  get count (): number {
    return this.manifest.chunks.length
  }

  cid (index: number): CID {
    let cid = this.cids[index]
    if (cid === undefined) {
      cid = parseBlobId(this.manifest.chunks[index])
      this.cids[index] = cid
    }
    return cid
  }

  /** bytes the chunk's blob takes on the wire */
  blobBytes (index: number): number {
    return chunkLength(this.manifest, index) + TAG_BYTES
  }

  /** bytes a full chunk's blob takes on the wire */
  get fullBlobBytes (): number {
    return this.manifest.chunkSize + TAG_BYTES
  }

  /** plaintext bytes of chunks `from` to `to` (excluded) */
  plainBytes (from: number, to: number): number {
    let total = 0
    for (let i = from; i < to; i++) total += chunkLength(this.manifest, i)
    return total
  }
}
