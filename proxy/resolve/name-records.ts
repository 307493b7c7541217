/**
 * Where the pool's names point, as the proxy believes it: `name-record`s
 * signed by the pool identity (core/signed-record.ts), fetched from
 * `GET /api/names/<name>`. Per name the proxy holds the verified record
 * with the highest sequence number and never goes back to a lower one,
 * whoever serves it (a lagging manager, a replayed answer). Records are
 * kept in the state directory, so with the manager down a name still
 * resolves to the newest generation this proxy saw.
 *
 * A record fetched within `freshMs` answers without asking again: a name
 * costs one manager round trip more than an id at most, and none while fresh.
 */
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { raceSignal } from 'race-signal'
import { BadInputError, describeError, ForbiddenError, NotFoundError, UnauthorizedError, UnavailableError, UpstreamError } from '../../core/errors.ts'
import { parseContentId } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import { replaceFile } from '../../core/replace-file.ts'
import { verifyRecord, type NameRecordBody } from '../../core/signed-record.ts'
import { withDefaults } from '../../core/with-defaults.ts'
import { capabilityTag } from '../capability.ts'
import type { NameRecordSource } from './manager-client.ts'
import { readKeptFile } from '../state/kept-file.ts'

export interface NameResolution {
  name: string
  seq: number
  /** the content id of that generation */
  content: string
  /** `manager`: it answered now; `fresh`: it answered within freshMs; `kept`: it did not answer, the last verified record did */
  from: 'manager' | 'fresh' | 'kept'
}

export interface NameResolver {
  resolve (name: string, options?: { capability?: string, signal?: AbortSignal }): Promise<NameResolution>
}

export interface NameRecordsComponents {
  manager: NameRecordSource
  /** peer ids whose signature is trusted (the pool's, live or remembered); undefined while none is known */
  trusted: () => string[] | undefined
  logger: Logger
  /** ms since the epoch, for expiry (default Date.now) */
  now?: () => number
}

export interface NameRecordsInit {
  /** where verified records are kept, e.g. `<stateDir>/names.json` (default: nowhere) */
  file?: string
  /** ms a record the manager just gave answers without asking again (default 5 s) */
  freshMs?: number
  /** ms for one manager call (default 5 s) */
  timeoutMs?: number
  /** names kept, the least recently used forgotten first (default 1000) */
  maxNames?: number
}

interface Held {
  body: NameRecordBody
  encoded: string
}

interface StateFile {
  v: 1
  /** name → the record exactly as signed, checked again when first used */
  records: Record<string, string>
}

/** Answers that mean the manager has spoken about this name: never replaced by a kept record. */
function isVerdict (err: unknown): boolean {
  return err instanceof NotFoundError || err instanceof ForbiddenError || err instanceof UnauthorizedError || err instanceof BadInputError
}

export class NameRecords implements NameResolver {
  private readonly c: NameRecordsComponents
  private readonly o: Required<Omit<NameRecordsInit, 'file'>>
  private readonly file: string | undefined
  private readonly now: () => number
  /** verified records, least recently used first */
  private readonly held = new Map<string, Held>()
  /** records read from the file, verified when first asked for (the pool's identity may not be known at load) */
  private readonly loaded = new Map<string, string>()
  /** when the manager last answered, by name and capability */
  private readonly answeredAt = new Map<string, number>()
  private readonly pending = new Map<string, Promise<NameResolution>>()
  private saving: Promise<void> = Promise.resolve()
  private readonly closing = new AbortController()

  constructor (components: NameRecordsComponents, init: NameRecordsInit = {}) {
    this.c = components
    this.file = init.file
    this.o = withDefaults<Omit<NameRecordsInit, 'file'>>({ freshMs: 5000, timeoutMs: 5000, maxNames: 1000 }, init)
    this.now = components.now ?? Date.now
  }

  /** Reads the kept records, if any; a missing or damaged file is a start without them. */
  async load (): Promise<void> {
    if (this.file == null) return
    const state = await readKeptFile<StateFile>(this.file, 'name records', this.c.logger)
    for (const [name, encoded] of Object.entries(state?.records ?? {})) if (typeof encoded === 'string') this.loaded.set(name, encoded)
  }

  /** The newest generation of `name` this proxy can vouch for (see the module comment). */
  async resolve (name: string, options: { capability?: string, signal?: AbortSignal } = {}): Promise<NameResolution> {
    const slot = options.capability == null ? name : `${name}#c:${capabilityTag(options.capability)}`
    await this.prepare(name)
    const held = this.usable(name)
    if (held != null && performance.now() - (this.answeredAt.get(slot) ?? -Infinity) < this.o.freshMs) return resolution(held, 'fresh')
    let work = this.pending.get(slot)
    if (work == null) {
      work = this.ask(name, slot, options.capability).finally(() => { this.pending.delete(slot) })
      this.pending.set(slot, work)
    }
    return options.signal == null ? await work : await raceSignal(work, options.signal)
  }

  /** The record held for `name`, for tests and the dashboard. */
  heldSeq (name: string): number | undefined {
    return this.usable(name)?.body.seq
  }

  /** Cancels calls in flight and waits for the last save. */
  async close (): Promise<void> {
    this.closing.abort(new UnavailableError('proxy is shutting down'))
    await this.saving
  }

  private async ask (name: string, slot: string, capability: string | undefined): Promise<NameResolution> {
    let encoded: string
    try {
      encoded = await this.c.manager.nameRecord(name, { capability, signal: this.closing.signal, timeoutMs: this.o.timeoutMs })
    } catch (err) {
      const held = this.usable(name)
      if (isVerdict(err) || held == null || this.closing.signal.aborted) throw err
      this.c.logger.debug({ name, seq: held.body.seq, err: describeError(err) }, 'manager unavailable: the name answers from its kept record')
      return resolution(held, 'kept')
    }
    const held = await this.adopt(name, encoded)
    this.answeredAt.set(slot, performance.now())
    return resolution(held, 'manager')
  }

  /** Verifies a record from the manager and takes it unless the one held is newer; returns what is held after. */
  private async adopt (name: string, encoded: string): Promise<Held> {
    const body = await this.verify(name, encoded, this.now())
    const held = this.usable(name)
    if (held != null && held.body.seq > body.seq) {
      this.c.logger.warn({ name, held: held.body.seq, offered: body.seq }, 'the manager answered an older generation of a name than the one held; keeping the newer')
      return held
    }
    if (held != null && held.body.seq === body.seq && held.body.content !== body.content) {
      throw new UpstreamError(`two records of ${name} with sequence ${body.seq} name different contents; keeping the first`)
    }
    const next = { body, encoded }
    this.remember(name, next)
    if (held?.body.seq !== body.seq) {
      this.c.logger.info({ name, seq: body.seq, content: body.content }, 'name record updated')
      this.save()
    }
    return next
  }

  private async verify (name: string, encoded: string, now: number): Promise<NameRecordBody> {
    const trusted = this.c.trusted()
    if (trusted == null) throw new UnavailableError('the pool\'s identity is not known yet: no name record can be checked')
    const { body } = await verifyRecord<NameRecordBody>(encoded, { kind: 'name-record', trusted, now })
    if (body.name !== name) throw new ForbiddenError(`the record offered for ${name} is for another name`)
    if (!Number.isSafeInteger(body.seq) || body.seq < 1) throw new UpstreamError(`the record of ${name} has no valid sequence number`)
    try {
      parseContentId(body.content)
    } catch (err) {
      throw new UpstreamError(`the record of ${name} names no valid content`, { cause: err })
    }
    return body
  }

  /** The record held for `name` if its signer is trusted now and it has not expired; a loaded one is verified on first use. */
  private usable (name: string): Held | undefined {
    const h = this.held.get(name)
    if (h != null) {
      const trusted = this.c.trusted()
      return trusted?.includes(h.body.iss) === true && h.body.exp > this.now() ? h : undefined
    }
    return undefined
  }

  private remember (name: string, h: Held): void {
    this.loaded.delete(name)
    this.held.delete(name)
    this.held.set(name, h)
    while (this.held.size + this.loaded.size > this.o.maxNames) {
      const oldest = this.loaded.keys().next().value ?? this.held.keys().next().value
      if (oldest == null) break
      this.loaded.delete(oldest)
      this.held.delete(oldest)
    }
  }

  /** Turns a record read from the file into a held one, if it still verifies; called before a name is resolved. */
  private async prepare (name: string): Promise<void> {
    const encoded = this.loaded.get(name)
    // Until the pool's identity is known, a kept record waits rather than being judged.
    if (encoded == null || this.held.has(name) || this.c.trusted() == null) return
    try {
      this.remember(name, { body: await this.verify(name, encoded, this.now()), encoded })
    } catch (err) {
      this.loaded.delete(name)
      this.c.logger.info({ name, err: describeError(err) }, 'a kept name record no longer verifies; dropped')
    }
  }

  /** Writes every record held or loaded, one save after another. */
  private save (): void {
    const file = this.file
    if (file == null) return
    this.saving = this.saving.then(async () => {
      const records: Record<string, string> = Object.fromEntries(this.loaded)
      for (const [name, h] of this.held) records[name] = h.encoded
      const state: StateFile = { v: 1, records }
      try {
        await mkdir(dirname(file), { recursive: true })
        await replaceFile(file, Buffer.from(JSON.stringify(state) + '\n'))
      } catch (err) {
        this.c.logger.warn({ file, err: describeError(err) }, 'could not keep the name records')
      }
    })
  }
}

function resolution (h: Held, from: NameResolution['from']): NameResolution {
  return { name: h.body.name, seq: h.body.seq, content: h.body.content, from }
}
