import type { CID } from 'multiformats/cid'
import { TAG_BYTES } from '../../core/chunk-crypto.ts'
import { parseBlobId } from '../../core/ids.ts'
import { chunkLength, chunkStart, type Manifest } from '../../core/manifest.ts'

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

  /**
   * bytes a typical full chunk's blob takes on the wire, what the window is
   * sized by: `chunkSize` for fixed chunks; for content-defined ones the
   * mean, since their `chunkSize` is the largest allowed, rarely reached
   */
  get fullBlobBytes (): number {
    const m = this.manifest
    if (m.offsets == null || m.chunks.length === 0) return m.chunkSize + TAG_BYTES
    return Math.ceil(m.size / m.chunks.length) + TAG_BYTES
  }

  /** plaintext bytes of chunks `from` to `to` (excluded) */
  plainBytes (from: number, to: number): number {
    return chunkStart(this.manifest, to) - chunkStart(this.manifest, from)
  }
}
