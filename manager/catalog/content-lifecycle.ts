/**
 * The two moments of a content's life that span stores and its key, each one
 * transaction so a crash leaves the content wholly before or wholly after:
 * - going visible: the upload's rows renamed to the content id, the key kept,
 *   the event recorded;
 * - being deleted: its rows and key gone, a tombstone left, the blobs still
 *   owed by each holder noted (deletes.ts), the event recorded.
 */
import { NotFoundError } from '../../core/errors.ts'
import type { Catalog } from './catalog.ts'
import type { Visible } from './contents.ts'
import type { KeyCustody } from './key-custody.ts'

/** Blobs of one content that one node still has to remove. */
export interface OwedDelete { content: string, node: string, blobs: string[] }

export type DeleteReason = 'content-deleted' | 'content-expired'

export class ContentLifecycle {
  private readonly catalog: Catalog
  private readonly keys: KeyCustody

  constructor (catalog: Catalog, keys: KeyCustody) {
    this.catalog = catalog
    this.keys = keys
  }

  /** Makes a finished upload visible under `visible.contentId` with its key; `detail` goes into the `content-published` event. */
  async publish (uploadId: string, visible: Visible, key: Uint8Array, detail: Record<string, unknown>): Promise<void> {
    const { catalog } = this
    await catalog.transaction(async () => {
      await catalog.makeVisible(uploadId, visible)
      await this.keys.put(visible.contentId, key)
      await catalog.recordEvent({ kind: 'content-published', content: visible.contentId, detail })
    })
  }

  /**
   * Deletes a visible content and returns what each holder still owes; the
   * caller sends the orders and clears each note as its order lands.
   */
  async delete (contentId: string, reason: DeleteReason, by: string, now: number): Promise<OwedDelete[]> {
    const { catalog } = this
    return catalog.transaction(async () => {
      if (await catalog.getVisible(contentId) == null) throw new NotFoundError(`no content ${contentId}`)
      const byNode = new Map<string, string[]>()
      // A blob another content holds on that node stays there: only this content's row goes.
      for (const copy of await catalog.exclusiveCopiesOf(contentId)) {
        const list = byNode.get(copy.node) ?? []
        list.push(copy.cid)
        byNode.set(copy.node, list)
      }
      await catalog.dropContent(contentId)
      await this.keys.destroy(contentId)
      await catalog.addTombstone(contentId, reason === 'content-expired' ? 'expired' : 'deleted', now)
      const owed: OwedDelete[] = []
      for (const [node, blobs] of byNode) {
        await catalog.addPendingDelete(contentId, node, blobs)
        owed.push({ content: contentId, node, blobs })
      }
      await catalog.recordEvent({ kind: reason, content: contentId, detail: { by, nodes: byNode.size } })
      return owed
    })
  }
}
