/**
 * The publish pipeline: bytes in, a visible content out, or nothing at all.
 *
 * The body is read through the chunker (fixed-size chunks, or content-defined
 * ones when asked: then the manifest records each chunk's offset); each chunk
 * is encrypted under a fresh content key, hashed to its chunk id, staged on disk and handed to the copy
 * dispatcher, which gets R confirmed copies onto nodes. When the body ends,
 * its length is checked, the manifest is built, signed and stored on every
 * node holding a chunk (so they index and provide the content), and only then,
 * in one transaction, the content becomes visible and its key is kept.
 *
 * Any failure (truncated or aborted body, over the limits, a chunk that cannot
 * get its copies, the deadline) makes nothing visible: delete orders go to
 * every node that may hold a blob of the upload and the upload's rows are
 * dropped. If the manager itself is stopping, the rows are left `pending`
 * instead, and `cleanupAbandoned` finishes the job at the next start, as it
 * does for an upload interrupted by a crash.
 */
import { randomUUID } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { CDC_DEFAULTS, checkCdcSizes, type CdcSizes } from '../../core/cdc-chunker.ts'
import { encodeKey, encryptChunk, newContentKey, TAG_BYTES } from '../../core/chunk-crypto.ts'
import { BadInputError, CapacityError, CdnError, describeError, TimeoutError, TooLargeError, UnavailableError, UpstreamError } from '../../core/errors.ts'
import { chunkCid, MANIFEST_CODEC } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import { MAX_MANIFEST_BYTES, sealMetadata, signManifest, type SignedManifest } from '../../core/manifest.ts'
import type { Catalog } from '../catalog/catalog.ts'
import { withDefaults } from '../../core/with-defaults.ts'
import { MANAGER_DEFAULTS } from '../defaults.ts'
import { chunksOf, type Chunking, type ChunkingMode } from '../../core/chunker.ts'
import { readBody } from './read-body.ts'
import { CopyDispatcher } from './copy-dispatcher.ts'
import type { ContentLifecycle } from '../catalog/content-lifecycle.ts'
import { sendDeletes } from '../orders/delete-orders.ts'
import { storeManifest } from './manifest-store.ts'
import { NamedChunks } from './named-chunks.ts'
import { checkHolders, type HaveFetch } from './holder-check.ts'
import type { LineageStore } from '../catalog/lineage.ts'
import type { NodeClient } from '../nodes/node-client.ts'
import { freeBytes, type PlacementCandidate } from '../replication/placement.ts'
import type { Staging } from './staging.ts'

export const MAX_REPLICAS = 16
export const MIN_CHUNK_SIZE = 1024
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024
/** Each chunk id costs ~62 manifest bytes; past this many the manifest would outgrow what readers accept. */
export const MAX_CHUNKS = Math.floor(MAX_MANIFEST_BYTES / 80)
export interface PublishComponents {
  catalog: Catalog
  lifecycle: ContentLifecycle
  staging: Staging
  nodes: NodeClient
  /** the pool now, as placement candidates */
  candidates: () => Promise<PlacementCandidate[]>
  /** the pool identity: its key signs manifests */
  signer: { privateKey: PrivateKey, peerId: string }
  /** this manager's peer id: uploads are bound to the manager receiving them (several managers share a catalog) */
  manager?: string
  /** the URL nodes fetch a staged blob from */
  stagingUrl: (cid: string) => string
  logger: Logger
  /** aborted when the manager stops */
  shutdown: AbortSignal
  onPublished?: (bytes: number) => void
  /** told of every upload body byte read, published or not (what publishers send: differential uploads send less) */
  onReceived?: (bytes: number) => void
  /** the names' lineages: a publish under a name stores only the chunks the name does not hold yet */
  lineage?: Pick<LineageStore, 'lookup' | 'record'>
  /** a holder's have-bitmap: a publish under a name checks the chunks it counted are still there (holder-check.ts) */
  have?: HaveFetch
}

export interface PublishInit {
  /** copies per chunk when the request names none (default 3) */
  replicas?: number
  /** size of fixed chunks (default 1 MiB) */
  chunkSize?: number
  /** how uploads are cut when the request does not say: 'fixed' (default) or 'cdc' (content-defined) */
  chunking?: ChunkingMode
  /** min / avg / max of content-defined chunks (default CDC_DEFAULTS: 512 KiB / 1 MiB / 2 MiB) */
  cdcSizes?: CdcSizes
  /** default 64 GiB */
  maxUploadBytes?: number
  /** ms for a whole upload (default 6 h) */
  uploadTimeoutMs?: number
  /** blobs per store order (default 16) */
  blobsPerOrder?: number
  /** store orders out at once per upload (default 8) */
  ordersInFlight?: number
  /** ms per order (default 2 min) */
  orderTimeoutMs?: number
  /** ms to send the delete orders of a failed upload (default 30 s) */
  cleanupTimeoutMs?: number
}

export interface PublishRequest {
  body: AsyncIterable<Uint8Array>
  /** label of the publisher token that authenticated the request */
  publisher: string
  /** id of the token that owns the content (may delete and share it) */
  owner?: string
  /** resolvable only with a capability or a token that may read it */
  private?: boolean
  name: string
  type: string
  replicas?: number
  /** fixed chunks of this size (refused together with chunking 'cdc') */
  chunkSize?: number
  /** 'cdc' cuts by content; default: the manager's choice, or 'fixed' when a chunk size is given */
  chunking?: ChunkingMode
  /** the declared length (content-length); a body that ends short of it is truncated */
  length?: number
  /** seconds from the moment the content becomes visible until it is deleted everywhere */
  ttlSeconds?: number
  /** aborted when the client goes away */
  signal?: AbortSignal
  /** a publish under a name (its lineage key, claimed before the body is read): chunks are keyed by content and deduplicated within the name */
  lineage?: { name: string, key: Uint8Array }
}

export interface PublishResult {
  id: string
  size: number
  chunks: number
  replicas: number
  /** base64url content key, for capability links */
  key: string
  /** ISO time the content expires, when published with a TTL */
  expiresAt?: string
  /** bytes of the chunks this publish stored; under a name, those it did not already hold */
  added: number
}

const { replicas, chunkSize, maxUploadBytes, uploadTimeoutMs, blobsPerOrder, ordersInFlight, orderTimeoutMs, cleanupTimeoutMs } = MANAGER_DEFAULTS
const PUBLISH_DEFAULTS: Required<PublishInit> = { replicas, chunkSize, chunking: 'fixed', cdcSizes: CDC_DEFAULTS, maxUploadBytes, uploadTimeoutMs, blobsPerOrder, ordersInFlight, orderTimeoutMs, cleanupTimeoutMs }

function checkInt (name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new BadInputError(`${name} must be an integer from ${min} to ${max}, got ${v}`)
  return v
}

/** One upload's chunk phase, as takeChunks needs it. */
interface ChunkRun {
  req: PublishRequest
  uploadId: string
  key: Uint8Array
  chunking: Chunking
  chunkSize: number
  signal: AbortSignal
  dispatcher: CopyDispatcher
  staged: Set<string>
  named?: NamedChunks
}

/** One upload's manifest placement, as placeManifest needs it. */
interface ManifestRun {
  uploadId: string
  signed: SignedManifest
  chunkIds: string[]
  replicas: number
  signal: AbortSignal
  staged: Set<string>
  dispatcher: CopyDispatcher
  named: boolean
  log: Logger
}

export class Publisher {
  private readonly c: PublishComponents
  private readonly log: Logger
  private readonly replicas: number
  private readonly chunkSize: number
  private readonly chunking: ChunkingMode
  private readonly cdcSizes: CdcSizes
  private readonly maxUploadBytes: number
  private readonly uploadTimeoutMs: number
  private readonly blobsPerOrder: number
  private readonly ordersInFlight: number
  private readonly orderTimeoutMs: number
  private readonly cleanupTimeoutMs: number
  private readonly active = new Set<Promise<unknown>>()

  constructor (components: PublishComponents, init: PublishInit = {}) {
    this.c = components
    this.log = components.logger
    const o = withDefaults(PUBLISH_DEFAULTS, init)
    this.replicas = checkInt('replicas', o.replicas, 1, MAX_REPLICAS)
    this.chunkSize = checkInt('chunk size', o.chunkSize, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
    this.chunking = o.chunking
    this.cdcSizes = checkCdcSizes(o.cdcSizes)
    this.maxUploadBytes = o.maxUploadBytes
    this.uploadTimeoutMs = o.uploadTimeoutMs
    this.blobsPerOrder = o.blobsPerOrder
    this.ordersInFlight = o.ordersInFlight
    this.orderTimeoutMs = o.orderTimeoutMs
    this.cleanupTimeoutMs = o.cleanupTimeoutMs
  }

  /** Publishes one upload; resolves only once the content is visible. */
  async publish (req: PublishRequest): Promise<PublishResult> {
    const p = this.run(req)
    this.active.add(p)
    try {
      return await p
    } finally {
      this.active.delete(p)
    }
  }

  /** Waits for publishes and cleanups in progress (they abort once `shutdown` fires). */
  async close (): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active])
  }

  /** The request's chunking: an explicit chunk size means fixed chunks, and cannot go with 'cdc'. */
  private chunkingOf (req: PublishRequest): Chunking {
    if (req.chunking === 'cdc' && req.chunkSize != null) throw new BadInputError('a chunk size applies to fixed chunking only; content-defined chunking sets its own sizes')
    // Under a name, chunks cut by content are what lets an edited file share the rest with its previous generation.
    const mode = req.chunking ?? (req.chunkSize != null ? 'fixed' : req.lineage != null ? 'cdc' : this.chunking)
    if (mode === 'cdc') return { kind: 'cdc', sizes: this.cdcSizes }
    return { kind: 'fixed', chunkSize: checkInt('chunk size', req.chunkSize ?? this.chunkSize, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE) }
  }

  private async run (req: PublishRequest): Promise<PublishResult> {
    const replicas = checkInt('replicas', req.replicas ?? this.replicas, 1, MAX_REPLICAS)
    const chunking = this.chunkingOf(req)
    // The largest chunk sizes buffers and room checks (and is the manifest's chunkSize); the smallest bounds the count.
    const chunkSize = chunking.kind === 'fixed' ? chunking.chunkSize : chunking.sizes.max
    const smallest = chunking.kind === 'fixed' ? chunking.chunkSize : chunking.sizes.min
    if (req.length != null) {
      if (req.length > this.maxUploadBytes) throw new TooLargeError(`upload of ${req.length} bytes is over the ${this.maxUploadBytes}-byte limit`)
      if (Math.ceil(req.length / smallest) > MAX_CHUNKS) throw new TooLargeError(`upload of ${req.length} bytes may need more than ${MAX_CHUNKS} chunks of ${smallest} bytes; use larger chunks`)
    }
    if (this.c.shutdown.aborted) throw new UnavailableError('manager is shutting down')
    const pool = await this.c.candidates()
    this.checkRoom(pool, replicas, chunkSize, req.length)

    const uploadId = `upload-${randomUUID()}`
    const key = newContentKey()
    const createdAt = new Date().toISOString()
    const deadline = AbortSignal.timeout(this.uploadTimeoutMs)
    // Orders stop only for hard stops; a vanished client stops the reading, and orders already out are let answer.
    const orderSignal = AbortSignal.any([deadline, this.c.shutdown])
    const signal = AbortSignal.any([orderSignal, ...(req.signal != null ? [req.signal] : [])])
    const log = this.log.child({ upload: uploadId })
    const staged = new Set<string>()
    await this.c.catalog.createUpload({ uploadId, name: req.name, type: req.type, chunkSize, replicas, createdAt, publisher: req.publisher, owner: req.owner, private: req.private, manager: this.c.manager ?? null })
    log.info({ name: req.name, length: req.length, replicas, chunking: chunking.kind, chunkSize, publisher: req.publisher }, 'upload started')

    const dispatcher = new CopyDispatcher({
      nodes: this.c.nodes,
      catalog: this.c.catalog,
      sourceUrl: this.c.stagingUrl,
      onComplete: (cid) => { this.unstage(staged, cid, log) },
      logger: log
    }, {
      content: uploadId,
      replicas,
      candidates: pool,
      signal: orderSignal,
      blobsPerOrder: this.blobsPerOrder,
      ordersInFlight: this.ordersInFlight,
      orderTimeoutMs: this.orderTimeoutMs
    })

    try {
      // ---- chunks --------------------------------------------------------
      const named = req.lineage != null ? new NamedChunks(req.lineage, uploadId, replicas) : undefined
      const { chunkIds, offsets, size, added } = await this.takeChunks({ req, uploadId, key, chunking, chunkSize, signal, dispatcher, staged, named })
      if (req.length != null && size !== req.length) {
        throw new BadInputError(`upload truncated: received ${size} of ${req.length} announced bytes`)
      }
      await dispatcher.finish()
      await named?.record(this.c)

      // ---- manifest ------------------------------------------------------
      const signed = await signManifest({
        size,
        chunkSize,
        chunks: chunkIds,
        // Content-defined chunks that all came out full-size still make a version 1 manifest.
        ...(chunking.kind === 'cdc' || named != null ? { offsets } : {}),
        ...(named != null ? { keys: named.sealedKeys(key) } : {}),
        createdAt,
        publisher: req.publisher,
        meta: sealMetadata(key, { name: req.name, type: req.type })
      }, this.c.signer.privateKey, this.c.signer.peerId)
      const contentId = signed.id.toString()
      signal.throwIfAborted()
      const holders = await this.placeManifest({ uploadId, signed, chunkIds, replicas, signal: orderSignal, staged, dispatcher, named: named != null, log })

      // ---- visible -------------------------------------------------------
      signal.throwIfAborted()
      const expiresAt = req.ttlSeconds != null ? Date.now() + req.ttlSeconds * 1000 : null
      await this.c.lifecycle.publish(uploadId, { contentId, size, chunkCount: chunkIds.length, manifest: signed.bytes, expiresAt }, key,
        { size, chunks: chunkIds.length, replicas, publisher: req.publisher, nodes: holders.length, ...(expiresAt != null ? { expiresAt: new Date(expiresAt).toISOString() } : {}) })
      this.c.onPublished?.(size)
      log.info({ content: contentId, size, chunks: chunkIds.length, nodes: holders.length }, 'content published')
      return { id: contentId, size, chunks: chunkIds.length, replicas, key: encodeKey(key), added, ...(expiresAt != null ? { expiresAt: new Date(expiresAt).toISOString() } : {}) }
    } catch (thrown) {
      const err = this.explain(thrown, { deadline, request: req.signal })
      await dispatcher.settle(err)
      log.warn({ code: err.code, err: err.message }, 'upload failed; nothing published')
      // Unstaged first: a node still working on an abandoned order then finds nothing to fetch.
      for (const id of staged) this.unstage(staged, id, log)
      await this.discard(uploadId, err, log)
      throw err
    } finally {
      for (const id of staged) this.unstage(staged, id, log)
    }
  }

  /**
   * Refuses at once (before any byte is read) an upload the pool cannot hold:
   * fewer than R nodes able to take a chunk, or, when the length is announced,
   * less free space in the pool than R copies of it.
   */
  private checkRoom (pool: PlacementCandidate[], replicas: number, chunkSize: number, length: number | undefined): void {
    const blob = Math.min(chunkSize, length ?? chunkSize) + TAG_BYTES
    const eligible = pool.filter(c => c.state === 'alive' && freeBytes(c) >= blob)
    if (eligible.length < replicas) {
      throw new CapacityError(`${replicas} copies were asked for but only ${eligible.length} nodes can take a chunk`)
    }
    const free = eligible.reduce((sum, c) => sum + freeBytes(c), 0)
    if (length != null && free < length * replicas) {
      throw new CapacityError(`${replicas} copies of ${length} bytes need more than the ${free} bytes free in the pool`)
    }
  }

  /** Reads the body's chunks; each new one is encrypted, staged and handed to the dispatcher, each one a name holds is counted. */
  private async takeChunks (u: ChunkRun): Promise<{ chunkIds: string[], offsets: number[], size: number, added: number }> {
    const chunkIds: string[] = []
    const offsets: number[] = []
    const named = u.named
    let added = 0
    const chunks = chunksOf(readBody(u.req.body, u.signal), u.chunking, { maxBytes: this.maxUploadBytes })
    let step = await chunks.next()
    while (step.done !== true) {
      const { index, bytes } = step.value
      this.c.onReceived?.(bytes.length)
      if (index >= MAX_CHUNKS) throw new TooLargeError(`upload needs more than ${MAX_CHUNKS} chunks; use larger chunks`)
      offsets.push(step.value.offset ?? index * u.chunkSize)
      const held = named != null ? await named.held(this.c, bytes) : undefined
      let id = held?.cid
      if (id == null) {
        const { blob, cid } = named != null && held != null ? named.encrypt(held.tag, bytes) : { blob: encryptChunk(u.key, index, bytes), cid: undefined }
        const staged = await this.stage(blob, cid)
        id = staged.toString()
        u.staged.add(id)
        await u.dispatcher.add(staged, blob.length)
        added += bytes.length
      }
      await this.c.catalog.addChunk(u.uploadId, index, id, bytes.length + TAG_BYTES)
      chunkIds.push(id)
      step = await chunks.next()
    }
    return { chunkIds, offsets, size: step.value, added }
  }

  /**
   * Stores the manifest on every chunk holder. Under a name, holders of the
   * chunks it already had are holders too, and they are checked once the
   * manifest is there (holder-check.ts): a chunk one lost meanwhile fails
   * the publish, since its bytes went with the request body.
   */
  private async placeManifest (p: ManifestRun): Promise<string[]> {
    const chunkHolders = p.named ? new Set((await this.c.catalog.copiesOf(p.uploadId)).filter(r => r.state === 'confirmed').map(r => r.node)) : p.dispatcher.holders()
    const holders = await storeManifest(this.c, { upload: p.uploadId, signed: p.signed, holders: chunkHolders, replicas: p.replicas, signal: p.signal, ordersInFlight: this.ordersInFlight, orderTimeoutMs: this.orderTimeoutMs, staged: p.staged })
    if (p.named && this.c.have != null) {
      const short = await checkHolders({ catalog: this.c.catalog, have: this.c.have, logger: p.log }, p.uploadId, p.signed.id.toString(), p.chunkIds, p.replicas, p.signal)
      if (short.size > 0) throw new UpstreamError(`${short.size} chunks the name held were lost from their holders while this publish ran; publish again`)
    }
    return holders
  }

  /** Stages an encrypted chunk under its id; the ciphertext is garbage as soon as staging has copied it. */
  private async stage (blob: Uint8Array, cid = chunkCid(blob)): Promise<CID> {
    await this.c.staging.put(cid.toString(), blob)
    return cid
  }

  /** Turns whatever ended an upload into the error the client should see. */
  private explain (err: unknown, signals: { deadline: AbortSignal, request?: AbortSignal }): CdnError {
    if (signals.deadline.aborted) return new TimeoutError(`upload not finished within ${this.uploadTimeoutMs} ms`, { cause: err })
    if (this.c.shutdown.aborted) return new UnavailableError('manager is shutting down', { cause: err })
    if (err instanceof CdnError) return err
    if (signals.request?.aborted === true) {
      const reason = signals.request.reason
      return reason instanceof CdnError ? reason : new BadInputError('upload aborted by the client', { cause: err })
    }
    return new CdnError(`publish failed: ${describeError(err)}`, 'ERR_INTERNAL', 500, { cause: err })
  }

  private unstage (staged: Set<string>, id: string, log: Logger): void {
    if (!staged.delete(id)) return
    this.c.staging.remove(id).catch((err: unknown) => { log.warn({ blob: id, err: describeError(err) }, 'could not remove a staged blob') })
  }

  /**
   * Undoes an upload: delete orders to every node that may hold one of its
   * blobs, then its rows go. When the manager is stopping, nothing can be
   * sent; the rows stay pending for `cleanupAbandoned` at the next start.
   */
  private async discard (uploadId: string, reason: CdnError | string, log: Logger): Promise<void> {
    if (this.c.shutdown.aborted) {
      log.info('manager stopping; upload left pending for cleanup at next start')
      return
    }
    try {
      const byNode = new Map<string, string[]>()
      const contents = new Set<string>()
      // A blob another content holds on that node stays there (only this upload's row goes).
      for (const copy of await this.c.catalog.exclusiveCopiesOf(uploadId)) {
        const list = byNode.get(copy.node) ?? []
        list.push(copy.cid)
        byNode.set(copy.node, list)
        // A manifest copy means nodes may have indexed the content: they must stop providing it too.
        if (CID.parse(copy.cid).code === MANIFEST_CODEC) contents.add(copy.cid)
      }
      const signal = AbortSignal.any([AbortSignal.timeout(this.cleanupTimeoutMs), this.c.shutdown])
      const orders = [...byNode].map(([node, blobs]) => ({ node, blobs, contents: [...contents] }))
      const results = await sendDeletes(this.c.nodes, orders, { limit: this.ordersInFlight, signal, timeout: this.orderTimeoutMs })
      if (this.c.shutdown.aborted) {
        log.info('manager stopping; upload left pending for cleanup at next start')
        return
      }
      const failedNodes = new Set<string>()
      results.forEach((r, i) => {
        if (r.status === 'rejected') {
          failedNodes.add(orders[i].node)
          log.warn({ node: orders[i].node, blobs: orders[i].blobs.length, err: describeError(r.reason) }, 'delete order for a failed upload did not go through; node GC will reclaim the blobs')
        }
      })
      await this.c.catalog.dropFailedUpload(uploadId, {
        code: typeof reason === 'string' ? 'ERR_ABANDONED' : reason.code,
        reason: typeof reason === 'string' ? reason : reason.message,
        nodes: byNode.size,
        unreachable: failedNodes.size
      })
    } catch (err) {
      log.error({ err: describeError(err) }, 'cleaning up a failed upload failed; it stays pending until the next start')
    }
  }

  /** Cleans up this manager's uploads left pending by a crash or a stop (run once at start). */
  async cleanupAbandoned (): Promise<number> {
    return await this.cleanup(await this.c.catalog.pendingUploads(this.c.manager), 'interrupted by a manager restart')
  }

  /** Cleans up the uploads of other managers not seen for `silentMs`: they died with them (the controller's duty). */
  async cleanupOrphaned (silentMs: number): Promise<number> {
    if (this.c.manager == null) return 0
    return await this.cleanup(await this.c.catalog.orphanedUploads(this.c.manager, silentMs), 'its manager died')
  }

  /** Discards uploads that cannot finish (an upload session gone idle): their blobs leave the nodes, their rows go. */
  async abandon (uploads: string[], why: string): Promise<number> {
    return await this.cleanup(uploads, why)
  }

  private async cleanup (pending: string[], why: string): Promise<number> {
    const p = (async () => {
      for (const uploadId of pending) {
        if (this.c.shutdown.aborted) break
        const log = this.log.child({ upload: uploadId })
        log.info({ why }, 'cleaning up an upload that cannot finish')
        await this.discard(uploadId, why, log)
      }
      return pending.length
    })()
    this.active.add(p)
    try {
      return await p
    } finally {
      this.active.delete(p)
    }
  }
}
