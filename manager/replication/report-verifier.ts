/**
 * Bad-copy reports, believed only once proven. A report ("node N served
 * bytes that do not match chunk C") changes nothing by itself: the manager
 * fetches that copy from that node (`GET <node>/chunk/<C>`) and hashes it.
 * Only a verified mismatch, or a 404 for a copy the catalog says the node
 * holds, marks the copy suspect (the replication controller then replaces
 * and deletes it). An intact copy rejects the report.
 *
 * What a forger can cost the pool is bounded: reports are rate-limited per
 * client address, one verification per copy runs at a time (reports of it
 * meanwhile join it), a copy just found intact is not fetched again for a
 * while, and verifications queue behind a small concurrency limit with a
 * bounded queue. So each accepted report costs at most one blob fetch.
 */
import { COPY_HEADER } from '../../core/data-plane-wire.ts'
import { LRUCache } from 'lru-cache'
import pLimit, { type LimitFunction } from 'p-limit'
import { Agent, request } from 'undici'
import { BadInputError, describeError, NotFoundError, UnavailableError } from '../../core/errors.ts'
import { matchesCid, parseBlobId } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import type { Catalog } from '../catalog/catalog.ts'
import { RateLimitedError, TokenBuckets } from '../api/rate-limit.ts'


export interface BadCopyReport {
  content: string
  chunk: string
  /** the accused node's peer id */
  node: string
  reason: string
}

/**
 * `corrupt`: the node served other bytes; `missing`: it answered 404;
 * `intact`: the bytes match (report rejected); `unverified`: the node could
 * not be asked (unreachable, timeout, other status): nothing changes;
 * `no-copy`: the catalog counts no copy there to accuse.
 */
export type Verdict = 'corrupt' | 'missing' | 'intact' | 'unverified' | 'no-copy'

export interface ReportVerifierComponents {
  catalog: Pick<Catalog, 'getVisible' | 'hasChunk' | 'copyState' | 'getNode' | 'blobSize' | 'judgeCopy'>
  logger: Logger
  /** ms clock for the intact-copy memory (default performance.now) */
  now?: () => number
}

export interface ReportVerifierInit {
  /** ms one verification fetch may take, headers and body (default 10 s) */
  timeoutMs?: number
  /** reports per second a client address earns (default 0.5) */
  ratePerSecond?: number
  /** reports a client address may send at once (default 10) */
  burst?: number
  /** verifications fetching at once (default 4) */
  concurrency?: number
  /** verifications running or waiting, past which reports are turned away (default 256) */
  maxPending?: number
  /** ms a copy found intact is not fetched again (default 60 s) */
  intactMemoryMs?: number
}

/** What `submit` answers at once. */
export interface Intake {
  /** a verification runs (or already ran for this copy); its outcome goes to the event log */
  verifying: boolean
  /** set when the report was decided without a fetch */
  verdict?: Verdict
}

export class ReportVerifier {
  private readonly c: ReportVerifierComponents
  private readonly log: Logger
  private readonly now: () => number
  private readonly timeoutMs: number
  private readonly maxPending: number
  private readonly intactMemoryMs: number
  private readonly buckets: TokenBuckets
  private readonly agent: Agent
  private readonly shutdown = new AbortController()
  /** `${chunk}@${node}` → the verification under way */
  private readonly running = new Map<string, Promise<Verdict>>()
  /** `${chunk}@${node}` → when it was found intact */
  private readonly intact = new LRUCache<string, number>({ max: 10_000 })
  /** verifications running at once */
  private readonly slots: LimitFunction

  constructor (components: ReportVerifierComponents, init: ReportVerifierInit = {}) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? (() => performance.now())
    this.timeoutMs = init.timeoutMs ?? 10_000
    this.slots = pLimit(Math.max(1, init.concurrency ?? 4))
    this.maxPending = Math.max(1, init.maxPending ?? 256)
    this.intactMemoryMs = init.intactMemoryMs ?? 60_000
    this.buckets = new TokenBuckets({ ratePerSecond: init.ratePerSecond ?? 0.5, burst: init.burst ?? 10 })
    this.agent = new Agent({ connections: 4, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs })
  }

  /**
   * Takes a report from `client` (its address): rate-limited (429), checked
   * against the catalog (404 unknown content, 400 a blob not of it), then
   * verified in the background unless it can be decided at once.
   */
  async submit (report: BadCopyReport, client: string): Promise<Intake> {
    if (this.shutdown.signal.aborted) throw new RateLimitedError('the manager is stopping')
    if (!this.buckets.take(client)) {
      throw new RateLimitedError(`too many reports from ${client}; try again in ${this.buckets.retryAfter(client)} s`)
    }
    const { catalog } = this.c
    if (await catalog.getVisible(report.content) == null) throw new NotFoundError(`no content ${report.content}`)
    if (report.chunk !== report.content && !(await catalog.hasChunk(report.content, report.chunk))) throw new BadInputError(`${report.chunk} is not a blob of ${report.content}`)
    const key = `${report.chunk}@${report.node}`
    if (await catalog.copyState(report.chunk, report.node) !== 'confirmed' || await catalog.getNode(report.node) == null) {
      await this.record(report, 'no-copy', {})
      return { verifying: false, verdict: 'no-copy' }
    }
    if (this.running.has(key)) return { verifying: true }
    const seen = this.intact.get(key)
    if (seen != null && this.now() - seen < this.intactMemoryMs) {
      await this.record(report, 'intact', { recent: true })
      return { verifying: false, verdict: 'intact' }
    }
    if (this.running.size >= this.maxPending) throw new RateLimitedError('the manager is verifying too many reports; try again later')
    const task = this.verify(report).finally(() => { this.running.delete(key) })
    this.running.set(key, task)
    return { verifying: true }
  }

  /** Resolves once no verification runs (tests). */
  async idle (): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()])
  }

  /** Cancels verifications under way and closes the connections. Safe to call twice. */
  async close (): Promise<void> {
    this.shutdown.abort(new UnavailableError('manager stopping'))
    await this.idle()
    await this.agent.close()
  }

  /** Fetches the accused copy, hashes it, and acts on the verdict. */
  private async verify (report: BadCopyReport): Promise<Verdict> {
    return await this.slots(async () => await this.verifyNow(report))
  }

  private async verifyNow (report: BadCopyReport): Promise<Verdict> {
    try {
      const node = await this.c.catalog.getNode(report.node)
      if (node == null || this.shutdown.signal.aborted) return 'unverified'
      const { verdict, error } = await this.fetchAndCheck(report, node.http)
      if (this.shutdown.signal.aborted) return verdict
      if (verdict === 'intact') {
        this.remember(`${report.chunk}@${report.node}`)
      }
      await this.record(report, verdict, error != null ? { error } : {})
      return verdict
    } catch (err) {
      // Only the catalog can throw here (e.g. closed while stopping): the report simply did not count.
      if (!this.shutdown.signal.aborted) this.log.error({ ...report, err: describeError(err) }, 'verifying a report failed')
      return 'unverified'
    }
  }

  private async fetchAndCheck (report: BadCopyReport, http: string): Promise<{ verdict: Verdict, error?: string }> {
    const cid = parseBlobId(report.chunk)
    const expected = await this.c.catalog.blobSize(report.content, report.chunk)
    const url = `${http.replace(/\/+$/, '')}/chunk/${report.chunk}`
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.timeoutMs)])
    try {
      const res = await request(url, { dispatcher: this.agent, method: 'GET', headers: { [COPY_HEADER]: '1' }, signal })
      try {
        if (res.statusCode === 404) return { verdict: 'missing' }
        if (res.statusCode !== 200) return { verdict: 'unverified', error: `HTTP ${res.statusCode}` }
        const bytes = await readAtMost(res.body, expected, signal)
        if (bytes == null) return { verdict: 'corrupt', error: `more than the ${expected} bytes of the blob` }
        return { verdict: matchesCid(cid, bytes) ? 'intact' : 'corrupt' }
      } finally {
        if (!res.body.destroyed) {
          // Destroying a body not read to its end makes undici emit our own abort as an error: it is expected, not a failure.
          res.body.on('error', () => {})
          res.body.destroy()
        }
      }
    } catch (err) {
      return { verdict: 'unverified', error: describeError(err).slice(0, 300) }
    }
  }

  /** Writes the outcome: a proven bad copy turns suspect in the same transaction as its event. */
  private async record (report: BadCopyReport, verdict: Verdict, extra: Record<string, unknown>): Promise<void> {
    const { catalog } = this.c
    const detail = { chunk: report.chunk, reason: report.reason, verdict, ...extra }
    const proven = verdict === 'corrupt' || verdict === 'missing'
    const kind = proven ? 'bad-copy-verified' : verdict === 'unverified' ? 'bad-copy-unverified' : 'bad-copy-rejected'
    const marked = await catalog.judgeCopy(
report.chunk, report.node, proven, marked => ({ kind, content: report.content, node: report.node, detail: proven ? { ...detail, marked } : detail }))
    const fields = { content: report.content, chunk: report.chunk, node: report.node, verdict }
    if (proven) this.log.warn({ ...fields, marked }, 'bad copy verified; it no longer counts')
    else this.log.info(fields, verdict === 'unverified' ? 'bad-copy report could not be verified; nothing changes' : 'bad-copy report rejected')
  }

  private remember (key: string): void {
    this.intact.set(key, this.now())
  }
}

/** The whole body if it is at most `limit` bytes; null (and the rest unread) when it is longer. */
async function readAtMost (body: AsyncIterable<Uint8Array>, limit: number, signal: AbortSignal): Promise<Uint8Array | null> {
  const parts: Uint8Array[] = []
  let size = 0
  for await (const piece of body) {
    signal.throwIfAborted()
    size += piece.length
    if (size > limit) return null
    parts.push(piece)
  }
  return Buffer.concat(parts)
}
