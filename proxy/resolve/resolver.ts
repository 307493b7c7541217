import { setTimeout as sleep } from 'node:timers/promises'
import { LRUCache } from 'lru-cache'
import type { CID } from 'multiformats/cid'
import { raceSignal } from 'race-signal'
import { BadInputError, CdnError, DecryptError, HashMismatchError, NoSourceError, NotFoundError, UnavailableError } from '../../core/errors.ts'
import { manifestCid, parseBlobId, parseContentId } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import { decodeManifest, MAX_MANIFEST_BYTES, openMetadata, verifyManifest, type ContentMetadata, type Manifest } from '../../core/manifest.ts'
import type { BlobCache } from '../state/chunk-cache.ts'
import type { BlobFetcher, HaveFetcher } from '../fetch/chunk-fetcher.ts'
import { capabilityTag } from '../capability.ts'
import type { DeadlineClock } from '../fetch/deadline.ts'
import type { ManagerApi } from './manager-client.ts'
import { searchProviders, type ProviderFinder, type ProviderSearch, type SourceOrigin, type SourceVouching } from './provider-search.ts'
import { mergeSources, type ContentSource, type SourceAddress } from './sources.ts'
import { withDefaults } from '../../core/with-defaults.ts'

/** Everything needed to fetch one content: checked manifest, key, decrypted metadata and who holds which chunks. */
export interface ResolvedContent {
  id: string
  cid: CID
  manifest: Manifest
  key: Uint8Array
  metadata: ContentMetadata
  /**
   * sources that answered their have-bitmap and hold at least one chunk;
   * empty when every chunk is in the disk cache (nobody was asked) or when
   * no source answered but some chunks are cached
   */
  sources: ContentSource[]
  /** true when the manager answered for it, so bad copies can be reported there */
  viaManager: boolean
}

export interface ResolveOptions {
  /** the content key from a key link (`?k=`); with it the manager is optional */
  key?: Uint8Array
  /** a capability (`?cap=`) the manager exchanges for a private content's key */
  capability?: string
  signal?: AbortSignal
}

export interface ContentResolver {
  resolve (id: string, options?: ResolveOptions): Promise<ResolvedContent>
  /** Forgets a cached resolution, e.g. after its sources failed. */
  invalidate (id: string): void
}

export type { ProviderFinder, SourceOrigin, SourceVouching }

export interface ResolverComponents {
  /** absent when the proxy runs on capability links alone */
  manager?: ManagerApi
  /** absent in tests that feed sources through the manager's hint */
  providers?: ProviderFinder
  /** absent: every source found is used (tests of other parts) */
  vouching?: SourceVouching
  blobs: BlobFetcher
  haves: HaveFetcher
  deadlines: DeadlineClock
  /** verified blobs on disk: manifests are read from it and kept in it; a content cached whole needs no source */
  cache?: BlobCache
  /** told each source's have-bitmap round trip: a light probe of sources never used yet */
  onProbe?: (source: string, rttMs: number) => void
  /**
   * Peer ids whose signatures are trusted; undefined while the manager's
   * identity is not known yet. Then any valid signature passes: the content
   * id already pins the manifest's bytes, the signer only proves origin.
   */
  trusted: () => string[] | undefined
  logger: Logger
  now?: () => number
}

export interface ResolverInit {
  /** ms a resolution is reused (default 30 s) */
  cacheTtlMs?: number
  /** resolutions kept (default 256) */
  cacheSize?: number
  /**
   * ms a content resolved before, whose every chunk is in the disk cache, is
   * answered from memory without asking anyone, even with the manager down
   * (default 1 h; never for a capability, which the manager may revoke)
   */
  replayTtlMs?: number
  /**
   * ms after which a replay also asks the manager, in the background, whether
   * the content still exists (default 30 s): the replay itself never waits,
   * and a content deleted there stops being replayed after one more request
   */
  replayCheckMs?: number
  /** ms the DHT is asked for providers (default 2 s) */
  providerTimeoutMs?: number
  /** ms the DHT may still add providers once some source is known (default 300) */
  providerGraceMs?: number
  /** providers taken from the DHT (default 20) */
  maxProviders?: number
  /** sources kept in all (default 32) */
  maxSources?: number
  /** ms for one source's have-bitmap (default 5 s) */
  haveTimeoutMs?: number
  /** ms the other sources may still answer once one has (default 500) */
  haveGraceMs?: number
  /** ms for a whole resolution (default 20 s) */
  timeoutMs?: number
}

/**
 * Turns a content id into a ResolvedContent: manifest and key from the
 * manager (or the key from a capability and the manifest from any provider),
 * sources from the manager's holder hint and the DHT, have-bitmaps from the
 * sources. Resolutions are cached briefly and concurrent ones shared, since a
 * browser asks for the same content several times in a row.
 */
export class Resolver implements ContentResolver {
  private readonly c: ResolverComponents
  private readonly o: Required<ResolverInit>
  private readonly cache: LRUCache<string, ResolvedContent>
  /** what was resolved (manifest, key, metadata: immutable for an id), for replays from the disk cache */
  private readonly known: LRUCache<string, ResolvedContent>
  private readonly pending = new Map<string, Promise<ResolvedContent>>()
  /** when the manager last vouched for a replayable content, by slot */
  private readonly checkedAt = new Map<string, number>()
  private readonly closing = new AbortController()
  private readonly now: () => number

  constructor (components: ResolverComponents, init: ResolverInit = {}) {
    this.c = components
    this.o = withDefaults<ResolverInit>({
      cacheTtlMs: 30_000,
      cacheSize: 256,
      replayTtlMs: 3_600_000,
      replayCheckMs: 30_000,
      providerTimeoutMs: 2000,
      providerGraceMs: 300,
      maxProviders: 20,
      maxSources: 32,
      haveTimeoutMs: 5000,
      haveGraceMs: 500,
      timeoutMs: 20_000
    }, init)
    this.now = components.now ?? (() => performance.now())
    // peek, not get: a hit does not count as use, only a fresh resolution does (the oldest resolved goes first).
    this.cache = new LRUCache({ max: Math.max(1, this.o.cacheSize), ttl: Math.max(1, this.o.cacheTtlMs), perf: { now: this.now } })
    this.known = new LRUCache({ max: Math.max(1, this.o.cacheSize), ttl: Math.max(1, this.o.replayTtlMs), perf: { now: this.now } })
  }

  async resolve (id: string, options: ResolveOptions = {}): Promise<ResolvedContent> {
    const cid = parseContentId(id)
    const canonical = cid.toString()
    // What was resolved with a key or a capability is never handed to a request without the same one.
    let slot = canonical
    if (options.key != null) slot += `#k:${Buffer.from(options.key).toString('hex')}`
    if (options.capability != null) slot += `#c:${capabilityTag(options.capability)}`
    const hit = this.cache.peek(slot) ?? this.replay(slot)
    if (hit != null) return hit
    let work = this.pending.get(slot)
    if (work == null) {
      work = this.run(cid, options.key, options.capability)
      this.pending.set(slot, work)
      work.then((value) => {
        this.store(slot, value)
      }, () => {
        // The failure reaches every waiter through `work`; nothing to cache.
      }).finally(() => { this.pending.delete(slot) })
    }
    // One caller giving up must not cancel the work the others wait for.
    return options.signal == null ? work : raceSignal(work, options.signal)
  }

  /** Forgets the sources found for `id`; what it is (manifest, key) stays known for replays from the disk cache. */
  invalidate (id: string): void {
    for (const slot of [...this.cache.keys()]) {
      if (slot === id || slot.startsWith(`${id}#`)) this.cache.delete(slot)
    }
  }

  /** Aborts resolutions in progress; their waiters see the abort. */
  close (): void {
    this.closing.abort(new UnavailableError('proxy is shutting down'))
    this.cache.clear()
    this.known.clear()
    this.checkedAt.clear()
  }

  private store (slot: string, value: ResolvedContent): void {
    this.cache.delete(slot)
    if (this.o.cacheSize > 0 && this.o.cacheTtlMs > 0) this.cache.set(slot, value)
    if (this.o.cacheSize > 0 && this.o.replayTtlMs > 0 && !isCapabilitySlot(slot)) {
      this.known.set(slot, value)
      if (value.viaManager) this.checkedAt.set(slot, this.now())
    }
  }

  /**
   * A content resolved before whose every chunk is on disk: the manifest and
   * key of an id never change, and no source is needed, so nobody is asked.
   */
  private replay (slot: string): ResolvedContent | undefined {
    const known = this.known.get(slot)
    if (known == null || this.cachedChunks(known.manifest) !== known.manifest.chunks.length) return undefined
    this.recheck(slot, known.id)
    return known.sources.length === 0 ? known : { ...known, sources: [] }
  }

  /**
   * Asks the manager, without making anyone wait, whether a replayed content
   * still exists; a 404 (deleted, expired) ends its replays. Any other failure
   * (the manager down, say) changes nothing: replays are what keep a cached
   * content watchable then.
   */
  private recheck (slot: string, id: string): void {
    const manager = this.c.manager
    if (manager == null || this.now() - (this.checkedAt.get(slot) ?? -Infinity) < this.o.replayCheckMs) return
    this.checkedAt.set(slot, this.now())
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.o.timeoutMs)])
    manager.resolve(id, { signal }).then(() => {}, (err: unknown) => {
      if (!(err instanceof NotFoundError)) return
      this.known.delete(slot)
      this.checkedAt.delete(slot)
      this.c.logger.info({ content: id }, 'content gone at the manager: no longer replayed from the cache')
    })
  }

  /** Shared by every waiter of one resolution, so it runs under the resolver's own deadline, not one caller's signal. */
  private async run (cid: CID, key: Uint8Array | undefined, capability: string | undefined): Promise<ResolvedContent> {
    const id = cid.toString()
    const deadline = this.c.deadlines.start(this.o.timeoutMs, this.closing.signal, `resolving ${id} took over ${this.o.timeoutMs} ms`)
    const signal = deadline.signal
    const search = searchProviders({ providers: this.c.providers, vouching: this.c.vouching, deadlines: this.c.deadlines, logger: this.c.logger }, cid, signal, this.o)
    try {
      let manifestBytes: Uint8Array | undefined
      let contentKey = key
      let holders: SourceAddress[] = []
      let viaManager = false
      if (this.c.manager != null) {
        try {
          const r = await this.c.manager.resolve(id, { signal, capability })
          manifestBytes = r.manifest
          holders = r.holders
          viaManager = true
          contentKey ??= r.key
        } catch (err) {
          // With a capability the manager is only a hint: private content is refused there, and it may be down.
          if (key == null || signal.aborted) throw err
          this.c.logger.debug({ err, id }, 'manager could not resolve; going on with the capability')
        }
      }
      if (contentKey == null) throw new BadInputError(`no manager is reachable to resolve ${id}: a capability link (with the key) is needed`)
      if (manifestBytes == null && this.c.cache?.has(cid) === true) manifestBytes = await this.c.cache.get(cid)
      let checked = manifestBytes == null ? undefined : await this.checkManifest(cid, manifestBytes, contentKey)
      if (checked != null && this.cachedChunks(checked.manifest) === checked.manifest.chunks.length) {
        // A replay: every byte is on disk, so no node is asked anything.
        this.c.cache?.store(cid, checked.bytes)
        return { id, cid, manifest: checked.manifest, metadata: checked.metadata, key: contentKey, sources: [], viaManager }
      }
      // Once some source is known, the DHT gets only a short grace to add others: the first byte matters more.
      if (holders.length === 0) await search.first
      await search.settle(this.o.providerGraceMs)
      search.stop()
      const sources = await this.vouched(holders, search, signal)
      checked ??= await this.checkManifest(cid, await this.fetchManifest(cid, sources, signal), contentKey)
      const { manifest, metadata } = checked
      this.c.cache?.store(cid, checked.bytes)
      const withHave = manifest.chunks.length === 0 ? [] : await this.fetchHaves(id, manifest.chunks.length, sources, signal)
      // Cached chunks can still be served (a seek back with the nodes gone); the read fails on the first one that is not.
      if (manifest.chunks.length > 0 && withHave.length === 0 && this.cachedChunks(manifest) === 0) {
        throw new NoSourceError(sources.length === 0 ? `no node is known to hold ${id}` : `none of the ${sources.length} known holders of ${id} answered`)
      }
      return { id, cid, manifest, key: contentKey, metadata, sources: withHave, viaManager }
    } catch (err) {
      if (deadline.expired || this.closing.signal.aborted) throw signal.reason
      throw err
    } finally {
      search.stop()
      deadline.clear()
    }
  }

  /**
   * The sources to use: the manager's holders and the DHT's providers that
   * the pool vouches for. When some it does not know turned up (a node that
   * just joined, or a stranger's record), a fresher list is asked for once
   * before they are left out.
   */
  private async vouched (holders: SourceAddress[], search: ProviderSearch, signal: AbortSignal): Promise<SourceAddress[]> {
    const v = this.c.vouching
    if (v == null) return mergeSources([holders, search.found], this.o.maxSources)
    const kept: SourceAddress[] = []
    let doubtful: Array<{ s: SourceAddress, from: SourceOrigin }> = []
    const judge = (s: SourceAddress, from: SourceOrigin): void => {
      const ok = v.judge(s, from)
      if (ok != null) kept.push(ok)
      else doubtful.push({ s, from })
    }
    for (const h of holders) judge(h, 'manager')
    kept.push(...search.found)
    if (search.doubtful.length + doubtful.length > 0) {
      const again = [...doubtful, ...search.doubtful.map(s => ({ s, from: 'dht' as const }))]
      doubtful = []
      // Judged again whatever the refresh brought: even a failed one tells something (a manager without the route).
      await v.refreshForUnknown(signal)
      for (const d of again) judge(d.s, d.from)
    }
    for (const d of doubtful) v.ignored(d.s, d.from)
    return mergeSources([kept], this.o.maxSources)
  }

  private cachedChunks (manifest: Manifest): number {
    const cache = this.c.cache
    if (cache == null) return 0
    let n = 0
    for (const chunk of manifest.chunks) if (cache.has(parseBlobId(chunk))) n++
    return n
  }

  /** With a capability and no manager, the manifest comes from any provider: it is stored like a chunk under the content id. */
  private async fetchManifest (cid: CID, sources: SourceAddress[], signal: AbortSignal): Promise<Uint8Array> {
    if (sources.length === 0) throw new NotFoundError(`no node provides ${cid.toString()}`)
    let last: unknown
    for (const source of sources) {
      try {
        const blob = await this.c.blobs.fetchBlob(source, cid, { maxBytes: MAX_MANIFEST_BYTES, signal })
        return blob.bytes
      } catch (err) {
        if (signal.aborted) throw err
        this.c.logger.warn({ err, id: cid.toString(), source: source.url }, 'source could not serve the manifest')
        last = err
      }
    }
    throw new NoSourceError(`no source could serve the manifest of ${cid.toString()}`, { cause: last })
  }

  /** The manifest's bytes against the id, its signature against the trusted signers, its metadata against the key. */
  private async checkManifest (cid: CID, bytes: Uint8Array, key: Uint8Array): Promise<{ bytes: Uint8Array, manifest: Manifest, metadata: ContentMetadata }> {
    const id = cid.toString()
    if (manifestCid(bytes).toString() !== id) throw new HashMismatchError(`manifest does not match content id ${id}`)
    const manifest = decodeManifest(bytes)
    await verifyManifest(manifest, this.c.trusted())
    return { bytes, manifest, metadata: readMetadata(key, manifest) }
  }

  /**
   * Asks every source for its have-bitmap at once. Once one has answered, the
   * others get a short grace and the laggards are left out of this
   * resolution: one hung node must not delay every first byte by a timeout.
   */
  private async fetchHaves (id: string, chunks: number, sources: SourceAddress[], signal: AbortSignal): Promise<ContentSource[]> {
    const answers: Array<ContentSource | undefined> = new Array(sources.length)
    const cutoff = new AbortController()
    const sub = AbortSignal.any([signal, cutoff.signal])
    let onFirst = (): void => {}
    const first = new Promise<void>((resolve) => { onFirst = resolve })
    const all = Promise.all(sources.map(async (s, i) => {
      try {
        const asked = this.now()
        const have = await this.c.haves.fetchHave(s, id, chunks, { signal: sub, timeoutMs: this.o.haveTimeoutMs })
        this.c.onProbe?.(s.id, this.now() - asked)
        if (have.some(b => b !== 0)) {
          answers[i] = { ...s, have }
          onFirst()
        }
      } catch (err) {
        if (signal.aborted) return
        if (cutoff.signal.aborted) this.c.logger.debug({ id, source: s.url }, 'source slower than the others to answer its have-bitmap; left out')
        else this.c.logger.warn({ err, id, source: s.url }, 'source did not answer its have-bitmap; leaving it out')
      }
    }))
    await Promise.race([all, first])
    const timer = new AbortController()
    await Promise.race([all, sleep(this.o.haveGraceMs, undefined, { signal: timer.signal }).catch(() => {})])
    timer.abort()
    cutoff.abort()
    await all
    return answers.filter((s): s is ContentSource => s !== undefined)
  }

}

function isCapabilitySlot (slot: string): boolean {
  return slot.includes('#c:')
}

function readMetadata (key: Uint8Array, manifest: Manifest): ContentMetadata {
  try {
    return openMetadata(key, manifest)
  } catch (err) {
    if (err instanceof CdnError) throw err
    // Authenticated but not JSON: the publisher sealed something else.
    throw new DecryptError('content metadata is unreadable', { cause: err })
  }
}
