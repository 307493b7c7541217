/**
 * Differential publishing under a name: the publisher chunks and hashes its
 * file itself, announces the plan, sends only the chunks the name does not
 * already hold, and commits (docs/PROTOCOLS.md, "Upload sessions").
 *
 * Each chunk is encrypted under a key derived from the name's lineage key
 * and its plaintext (core/chunk-keys.ts), so equal chunks of one name are one
 * blob. A chunk the name holds with R confirmed copies is counted for the new
 * generation by adding its copy rows (no bytes move); a chunk sent is
 * answered only once it has R confirmed copies. The commit builds a version 3
 * manifest, whose chunk keys are sealed under a fresh content key, stores it
 * on every holder and makes the generation visible.
 *
 * A session lives in the catalog, not in this object: any manager may take
 * its chunks and its commit, and an interrupted upload resumes by opening
 * the same name again.
 */
import { randomUUID } from 'node:crypto'
import { encodeKey, newContentKey, TAG_BYTES } from '../../core/chunk-crypto.ts'
import { chunkKeyOf, chunkTags, encryptWithChunkKey, plaintextHash, sealChunkKeys } from '../../core/chunk-keys.ts'
import { BadInputError, CapacityError, CdnError, describeError, ForbiddenError, MissingChunksError, NotFoundError, TooLargeError, UnavailableError } from '../../core/errors.ts'
import { chunkCid } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import type { PublishComponents } from './publish.ts'
import { withDefaults } from '../../core/with-defaults.ts'
import { CDC_DEFAULTS } from '../../core/cdc-chunker.ts'
import { MANAGER_DEFAULTS } from '../defaults.ts'
import { mayUseOwned } from '../api/access.ts'
import { sealMetadata, signManifest, type SignedManifest } from '../../core/manifest.ts'
import type { LineageStore } from '../catalog/lineage.ts'
import type { Principal } from '../catalog/tokens.ts'
import type { SessionRow, UploadSessionStore, UploadPlan } from '../catalog/upload-sessions.ts'
import { CopyDispatcher } from './copy-dispatcher.ts'
import { storeManifest } from './manifest-store.ts'
import { adoptHeldChunks } from './held-chunks.ts'
import { checkHolders, type HaveFetch } from './holder-check.ts'
import { readExactly } from './read-body.ts'

/** What a streamed publish needs (publish.ts), and the stores of lineages and sessions. */
export interface SessionPublisherComponents extends Pick<PublishComponents, 'catalog' | 'lifecycle' | 'staging' | 'nodes' | 'candidates' | 'signer' | 'manager' | 'stagingUrl' | 'logger' | 'shutdown' | 'onPublished' | 'onReceived'> {
  /** a holder's have-bitmap: the commit checks that held chunks are still there (holder-check.ts) */
  have: HaveFetch
  lineage: LineageStore
  sessions: UploadSessionStore
  /** discards uploads that cannot finish: their exclusive blobs leave the nodes (Publisher.abandon) */
  abandon: (uploads: string[], why: string) => Promise<number>
  now?: () => number
}

export interface SessionPublisherInit {
  /** copies per chunk when the plan names none (default 3) */
  replicas?: number
  /** the chunk size recorded for a session's pending row (default 2 MiB, the content-defined maximum; the API refuses larger chunks) */
  maxChunkBytes?: number
  maxUploadBytes?: number
  /** a session not used for this long is discarded (default 6 h: well inside the nodes' 24 h grace for blobs no manifest names) */
  idleMs?: number
  ordersInFlight?: number
  orderTimeoutMs?: number
}

const SESSION_DEFAULTS: Required<SessionPublisherInit> = {
  replicas: MANAGER_DEFAULTS.replicas,
  maxChunkBytes: CDC_DEFAULTS.max,
  maxUploadBytes: MANAGER_DEFAULTS.maxUploadBytes,
  idleMs: 6 * 3600_000,
  ordersInFlight: MANAGER_DEFAULTS.ordersInFlight,
  orderTimeoutMs: MANAGER_DEFAULTS.orderTimeoutMs
}

/** What a publisher announces (parsed from the wire by manager/api/session-wire.ts). */
export interface PlanRequest {
  /** sha-256 of each chunk's plaintext, in file order */
  hashes: Uint8Array[]
  sizes: number[]
  file: string
  type: string
  /** default: the manager's */
  replicas?: number
  private: boolean
  keep?: number
  ttlSeconds?: number
}

export interface OpenedSession {
  upload: string
  missing: number[]
  missingBytes: number
  chunks: number
  resumed: boolean
}

export interface CommittedSession {
  id: string
  size: number
  chunks: number
  replicas: number
  key: string
  private: boolean
  expiresAt?: string
  /** chunk bytes the session received */
  uploadedBytes: number
  /** chunks another content of the name already held */
  reusedChunks: number
  /** for the generation: what the name must keep */
  keep?: number
}

export class SessionPublisher {
  private readonly c: SessionPublisherComponents
  private readonly log: Logger
  private readonly now: () => number
  private readonly replicas: number
  private readonly maxChunkBytes: number
  private readonly maxUploadBytes: number
  readonly idleMs: number
  private readonly ordersInFlight: number
  private readonly orderTimeoutMs: number
  /** chunks being stored and commits under way, which a stop waits for */
  private readonly active = new Set<Promise<unknown>>()

  constructor (components: SessionPublisherComponents, init: SessionPublisherInit = {}) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    const o = withDefaults(SESSION_DEFAULTS, init)
    this.replicas = o.replicas
    this.maxChunkBytes = o.maxChunkBytes
    this.maxUploadBytes = o.maxUploadBytes
    this.idleMs = o.idleMs
    this.ordersInFlight = o.ordersInFlight
    this.orderTimeoutMs = o.orderTimeoutMs
  }

  /**
   * Opens a session for `name`, or resumes the caller's unfinished one (its
   * plan replaced: a file that grew keeps what was sent). Claims the name
   * for a first publisher, refusing one that does not own it before a byte
   * is sent. Says which chunks must be sent.
   */
  async open (name: string, who: Principal, request: PlanRequest, mayAppend: (owner: string) => boolean): Promise<OpenedSession> {
    if (this.c.shutdown.aborted) throw new UnavailableError('manager is shutting down')
    const total = request.sizes.reduce((a, b) => a + b, 0)
    if (total > this.maxUploadBytes) throw new TooLargeError(`upload of ${total} bytes is over the ${this.maxUploadBytes}-byte limit`)
    const lineage = await this.c.lineage.claim(name, who.id, mayAppend, this.now())
    const { hashes, sizes, replicas, keep, ttlSeconds, ...rest } = request
    const plan: UploadPlan = {
      ...rest,
      tags: chunkTags(lineage, hashes),
      sizes,
      replicas: replicas ?? this.replicas,
      ...(keep != null ? { keep } : {}),
      ...(ttlSeconds != null ? { ttlSeconds } : {})
    }
    await this.checkRoom(plan.replicas)
    const found = await this.c.sessions.find(name, who.id)
    let upload: string
    if (found != null && found.plan.replicas === plan.replicas && found.plan.private === plan.private) {
      upload = found.upload
      await this.c.sessions.replacePlan(upload, plan, this.now())
    } else {
      // Another copy count or access is another upload: the old session's blobs go.
      if (found != null) await this.c.abandon([found.upload], 'replaced by a session with other settings')
      upload = await this.create(name, who, plan)
    }
    const { missing } = await adoptHeldChunks(this.c, name, upload, plan.tags, plan.replicas)
    const missingBytes = missing.reduce((sum, i) => sum + plan.sizes[i], 0)
    this.log.info({ upload, name, chunks: plan.tags.length, missing: missing.length, missingBytes, resumed: found?.upload === upload }, found?.upload === upload ? 'upload session resumed' : 'upload session opened')
    return { upload, missing, missingBytes, chunks: plan.tags.length, resumed: found?.upload === upload }
  }

  /**
   * Takes chunk `index` of a session: checks its bytes against the announced
   * hash, encrypts it under its derived key and answers once it has R
   * confirmed copies. A chunk the name already holds is not read at all
   * (`stored: false`).
   */
  async putChunk (name: string, upload: string, index: number, who: Principal, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<{ stored: boolean }> {
    return await this.track(this.takeChunk(name, upload, index, who, body, signal))
  }

  private async takeChunk (name: string, upload: string, index: number, who: Principal, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<{ stored: boolean }> {
    const session = await this.session(name, upload, who)
    const { plan } = session
    if (!Number.isSafeInteger(index) || index < 0 || index >= plan.tags.length) throw new BadInputError(`chunk ${index} is not in this upload (it has ${plan.tags.length})`)
    const tag = plan.tags[index]
    if (await this.held(name, upload, tag, plan.replicas)) return { stored: false }
    const bytes = await readExactly(body, plan.sizes[index], signal)
    this.c.onReceived?.(bytes.length)
    const lineage = await this.c.lineage.key(name)
    if (lineage == null) throw new NotFoundError(`the name ${name} has no lineage key`)
    if (chunkTags(lineage, [plaintextHash(bytes)])[0] !== tag) throw new BadInputError(`chunk ${index} does not match the hash announced for it`)
    const blob = encryptWithChunkKey(chunkKeyOf(lineage, tag), bytes)
    const cid = chunkCid(blob)
    await this.copy(upload, cid, blob, plan.replicas)
    await this.c.lineage.record(name, { tag, cid: cid.toString(), size: bytes.length })
    await this.c.sessions.addStored(upload, bytes.length, this.now())
    return { stored: true }
  }

  /**
   * Publishes the session's plan as a content: every chunk must have R
   * confirmed copies (else MissingChunksError, 409, naming them). Leaves the
   * generation to the name service, as a streamed publish does.
   */
  async commit (name: string, upload: string, who: Principal): Promise<CommittedSession> {
    return await this.track(this.finish(name, upload, who))
  }

  /** Waits for the chunks and commits under way (they stop early once `shutdown` fires). */
  async close (): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active])
  }

  private async track<T> (work: Promise<T>): Promise<T> {
    this.active.add(work)
    try {
      return await work
    } finally {
      this.active.delete(work)
    }
  }

  private async finish (name: string, upload: string, who: Principal): Promise<CommittedSession> {
    const session = await this.session(name, upload, who)
    const { plan } = session
    const { cids, reusedChunks } = await this.settleChunks(name, upload, plan)
    const lineage = await this.c.lineage.key(name)
    if (lineage == null) throw new NotFoundError(`the name ${name} has no lineage key`)
    const { signed, key, size } = await this.sign(session, cids, lineage)
    const contentId = signed.id.toString()
    const holders = await this.place(upload, signed, cids, plan.replicas)
    const expiresAt = plan.ttlSeconds != null ? this.now() + plan.ttlSeconds * 1000 : null
    await this.c.lifecycle.publish(upload, { contentId, size, chunkCount: cids.length, manifest: signed.bytes, expiresAt }, key,
      { size, chunks: cids.length, replicas: plan.replicas, publisher: session.owner, nodes: holders.length, uploaded: session.uploaded, reused: reusedChunks })
    // The session row followed its upload row to the content id (ON UPDATE CASCADE); its work is done.
    await this.c.sessions.drop(contentId)
    this.c.onPublished?.(size)
    this.log.info({ upload, content: contentId, name, size, chunks: cids.length, uploadedBytes: session.uploaded, reusedChunks }, 'differential upload published')
    return {
      id: contentId,
      size,
      chunks: cids.length,
      replicas: plan.replicas,
      key: encodeKey(key),
      private: plan.private,
      ...(expiresAt != null ? { expiresAt: new Date(expiresAt).toISOString() } : {}),
      uploadedBytes: session.uploaded,
      reusedChunks,
      ...(plan.keep != null ? { keep: plan.keep } : {})
    }
  }

  /**
   * Every planned chunk with R copies (else MissingChunksError), recorded as
   * the upload's chunks in order; rows of chunks no longer planned go.
   */
  private async settleChunks (name: string, upload: string, plan: UploadPlan): Promise<{ cids: string[], reusedChunks: number }> {
    const { missing, cids } = await adoptHeldChunks(this.c, name, upload, plan.tags, plan.replicas)
    if (missing.length > 0) throw new MissingChunksError(missing)
    const reusedChunks = (await this.c.catalog.sharedWithOthers(upload, cids)).size
    await this.forgetUnplanned(upload, new Set(cids))
    await this.c.catalog.setChunks(upload, cids.map((cid, i) => ({ cid, size: plan.sizes[i] + TAG_BYTES })))
    return { cids, reusedChunks }
  }

  /** A version 3 manifest under a fresh content key: offsets from the plan, chunk keys sealed under that key. */
  private async sign (session: SessionRow, cids: string[], lineage: Uint8Array): Promise<{ signed: SignedManifest, key: Uint8Array, size: number }> {
    const { plan } = session
    const key = newContentKey()
    const offsets: number[] = []
    let size = 0
    let largest = 1
    for (const s of plan.sizes) {
      offsets.push(size)
      size += s
      largest = Math.max(largest, s)
    }
    const signed = await signManifest({
      size,
      chunkSize: largest,
      chunks: cids,
      offsets,
      keys: sealChunkKeys(key, plan.tags.map(t => chunkKeyOf(lineage, t))),
      createdAt: new Date(this.now()).toISOString(),
      publisher: session.owner,
      meta: sealMetadata(key, { name: plan.file, type: plan.type })
    }, this.c.signer.privateKey, this.c.signer.peerId)
    return { signed, key, size }
  }

  /**
   * Stores the manifest on every holder, then checks them (holder-check.ts):
   * a held chunk a holder lost before the manifest reached it is asked for
   * again (MissingChunksError) rather than counted.
   */
  private async place (upload: string, signed: SignedManifest, cids: string[], replicas: number): Promise<string[]> {
    const holders = new Set((await this.c.catalog.copiesOf(upload)).filter(r => r.state === 'confirmed').map(r => r.node))
    const staged = new Set<string>()
    const signal = AbortSignal.any([AbortSignal.timeout(this.orderTimeoutMs), this.c.shutdown])
    let stored: string[]
    try {
      stored = await storeManifest(this.c, { upload, signed, holders, replicas, signal, ordersInFlight: this.ordersInFlight, orderTimeoutMs: this.orderTimeoutMs, staged })
    } finally {
      for (const id of staged) await this.unstage(id)
    }
    const short = await checkHolders({ ...this.c, logger: this.log }, upload, signed.id.toString(), cids, replicas, signal)
    if (short.size > 0) throw new MissingChunksError(cids.flatMap((cid, i) => short.has(cid) ? [i] : []))
    return stored
  }

  /** Discards sessions nobody used for `idleMs` (the controller's chore); returns how many. */
  async expire (): Promise<number> {
    const idle = await this.c.sessions.expired(this.now() - this.idleMs)
    if (idle.length === 0) return 0
    return await this.c.abandon(idle, `upload session idle for ${Math.round(this.idleMs / 60_000)} min`)
  }

  private async session (name: string, upload: string, who: Principal): Promise<SessionRow> {
    const session = await this.c.sessions.get(upload)
    if (session == null || session.name !== name) throw new NotFoundError(`no upload session ${upload} for ${name} (finished, or discarded after ${Math.round(this.idleMs / 60_000)} idle minutes)`)
    if (!mayUseOwned(session.owner, who)) throw new ForbiddenError(`upload session ${upload} belongs to another publisher`)
    return session
  }

  private async create (name: string, who: Principal, plan: UploadPlan): Promise<string> {
    const upload = `upload-${randomUUID()}`
    const createdAt = new Date(this.now()).toISOString()
    await this.c.catalog.transaction(async () => {
      await this.c.catalog.createUpload({ uploadId: upload, name: plan.file, type: plan.type, chunkSize: this.maxChunkBytes, replicas: plan.replicas, createdAt, publisher: who.id, owner: who.id, private: plan.private, manager: this.c.manager ?? null })
      await this.c.sessions.create(upload, name, who.id, plan, this.now())
    })
    return upload
  }

  private async held (name: string, upload: string, tag: string, replicas: number): Promise<boolean> {
    return (await adoptHeldChunks(this.c, name, upload, [tag], replicas)).missing.length === 0
  }

  /** Gets R confirmed copies of one blob, recorded under the session's upload. */
  private async copy (upload: string, cid: ReturnType<typeof chunkCid>, blob: Uint8Array, replicas: number): Promise<void> {
    const id = cid.toString()
    await this.c.staging.put(id, blob)
    const signal = AbortSignal.any([AbortSignal.timeout(this.orderTimeoutMs * 2), this.c.shutdown])
    const dispatcher = new CopyDispatcher({ nodes: this.c.nodes, catalog: this.c.catalog, sourceUrl: this.c.stagingUrl, logger: this.log.child({ upload }) },
      { content: upload, replicas, candidates: await this.c.candidates(), signal, ordersInFlight: this.ordersInFlight, orderTimeoutMs: this.orderTimeoutMs })
    try {
      await dispatcher.add(cid, blob.length)
      await dispatcher.finish()
    } catch (err) {
      const reason = err instanceof CdnError ? err : new CdnError(`storing a chunk failed: ${describeError(err)}`, 'ERR_INTERNAL', 500, { cause: err })
      await dispatcher.settle(reason)
      throw reason
    } finally {
      await this.unstage(id)
    }
  }

  /**
   * Rows of chunks an earlier plan of a resumed session sent and this one
   * does not use go; no manifest will name those blobs, so the nodes' GC
   * reclaims them (a later generation may still find them by tag meanwhile).
   */
  private async forgetUnplanned (upload: string, planned: Set<string>): Promise<void> {
    const stray = (await this.c.catalog.copiesOf(upload)).filter(r => !planned.has(r.cid))
    for (const r of stray) await this.c.catalog.removeCopyFor(upload, r.cid, r.node)
  }

  private async checkRoom (replicas: number): Promise<void> {
    const alive = (await this.c.candidates()).filter(c => c.state === 'alive')
    if (alive.length < replicas) throw new CapacityError(`${replicas} copies were asked for but only ${alive.length} nodes are alive`)
  }

  private async unstage (id: string): Promise<void> {
    await this.c.staging.remove(id).catch((err: unknown) => { this.log.warn({ blob: id, err: describeError(err) }, 'could not remove a staged blob') })
  }
}

