/**
 * The proxy's name records (proxy/resolve/name-records.ts): verified against
 * the pool's identity, never replaced by a lower sequence number, kept on
 * disk and answered from there while the manager is down, and not asked
 * again while fresh.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ForbiddenError, NotFoundError, UpstreamError } from '../../../../core/errors.ts'
import { manifestCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { signRecord, type NameRecordBody } from '../../../../core/signed-record.ts'
import type { NameRecordSource } from '../../../../proxy/resolve/manager-client.ts'
import { NameRecords } from '../../../../proxy/resolve/name-records.ts'
import { rejects } from '../../../support/rejects.ts'
import { makeSigner, type Signer } from '../../proxy-standins.ts'

const NAME = 'films/launch.mp4'
const contentOf = (n: number): string => manifestCid(Buffer.from(`generation ${n}`)).toString()

async function record (signer: Signer, seq: number, over: Partial<NameRecordBody> = {}): Promise<string> {
  const iat = Date.now()
  return await signRecord({ kind: 'name-record', iss: signer.id, iat, exp: iat + 3600_000, name: NAME, seq, content: contentOf(seq), ...over } as NameRecordBody, signer.key)
}

/** A manager that answers what the test says, and counts the calls. */
class StandInManager implements NameRecordSource {
  answer: () => Promise<string> = async () => { throw new UpstreamError('no answer set') }
  calls = 0
  async nameRecord (): Promise<string> {
    this.calls++
    return await this.answer()
  }
}

interface Ctx { dir: string, pool: Signer, manager: StandInManager }
const names = suite<Ctx>('name records')

names.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-names-'))
  ctx.pool = await makeSigner()
  ctx.manager = new StandInManager()
})
names.after.each(async (ctx) => { await rm(ctx.dir, { recursive: true, force: true }) })

function open (ctx: Ctx, freshMs = 0): NameRecords {
  return new NameRecords({ manager: ctx.manager, trusted: () => [ctx.pool.id], logger: silentLogger() }, { file: join(ctx.dir, 'names.json'), freshMs })
}

/** A proxy's records that resolved NAME to generation `seq` once (it keeps that record). */
async function openHolding (ctx: Ctx, seq: number): Promise<NameRecords> {
  const r = open(ctx)
  const signed = await record(ctx.pool, seq)
  ctx.manager.answer = async () => signed
  await r.resolve(NAME)
  return r
}

names('a record signed by the pool resolves the name to its generation', async (ctx) => {
  const r = open(ctx)
  const signed = await record(ctx.pool, 3)
  ctx.manager.answer = async () => signed
  assert.equal(await r.resolve(NAME), { name: NAME, seq: 3, content: contentOf(3), from: 'manager' })
  await r.close()
})

names('a record signed by anyone else, or for another name, is refused', async (ctx) => {
  const r = open(ctx)
  const stranger = await makeSigner()
  const forged = await record(stranger, 9)
  ctx.manager.answer = async () => forged
  await rejects(async () => await r.resolve(NAME), (e: unknown) => e instanceof ForbiddenError && /does not trust/.test(e.message))
  const other = await record(ctx.pool, 9, { name: 'other' })
  ctx.manager.answer = async () => other
  await rejects(async () => await r.resolve(NAME), (e: unknown) => e instanceof ForbiddenError && /another name/.test(e.message))
  const expired = await record(ctx.pool, 9, { exp: Date.now() - 1 })
  ctx.manager.answer = async () => expired
  await rejects(async () => await r.resolve(NAME), /expired/)
  await r.close()
})

names('a lower sequence number never replaces the one held; a higher one does', async (ctx) => {
  const r = open(ctx)
  const [two, three, four] = [await record(ctx.pool, 2), await record(ctx.pool, 3), await record(ctx.pool, 4)]
  ctx.manager.answer = async () => three
  assert.is((await r.resolve(NAME)).seq, 3)
  // A lagging manager (or a replayed answer) offers generation 2: still 3.
  ctx.manager.answer = async () => two
  const after = await r.resolve(NAME)
  assert.equal([after.seq, after.content], [3, contentOf(3)])
  ctx.manager.answer = async () => four
  assert.is((await r.resolve(NAME)).seq, 4)
  await r.close()
})

names('with the manager down the kept record answers, also after a restart; a 404 is not overruled', async (ctx) => {
  const first = await openHolding(ctx, 5)
  ctx.manager.answer = async () => { throw new UpstreamError('manager at http://127.0.0.1:1 is unreachable') }
  assert.equal(await first.resolve(NAME), { name: NAME, seq: 5, content: contentOf(5), from: 'kept' })
  await first.close()
  const restarted = open(ctx)
  await restarted.load()
  assert.equal(await restarted.resolve(NAME), { name: NAME, seq: 5, content: contentOf(5), from: 'kept' })
  // A lower record from the manager once it is back is refused after the restart too.
  const lower = await record(ctx.pool, 4)
  ctx.manager.answer = async () => lower
  assert.is((await restarted.resolve(NAME)).seq, 5)

  ctx.manager.answer = async () => { throw new NotFoundError(`no name ${NAME}`) }
  await rejects(async () => await restarted.resolve(NAME), (e: unknown) => e instanceof NotFoundError)
  // A name never seen has nothing kept: the manager's failure is the answer.
  ctx.manager.answer = async () => { throw new UpstreamError('unreachable') }
  await rejects(async () => await restarted.resolve('never/seen'), (e: unknown) => e instanceof UpstreamError)
  await restarted.close()
})

names('a kept record signed by an identity the pool no longer uses is not answered', async (ctx) => {
  const first = await openHolding(ctx, 5)
  await first.close()
  const newPool = await makeSigner()
  const other = new NameRecords({ manager: ctx.manager, trusted: () => [newPool.id], logger: silentLogger() }, { file: join(ctx.dir, 'names.json') })
  await other.load()
  ctx.manager.answer = async () => { throw new UpstreamError('unreachable') }
  await rejects(async () => await other.resolve(NAME), (e: unknown) => e instanceof UpstreamError)
  await other.close()
})

names('while fresh, a name is answered without asking the manager; concurrent asks share one call', async (ctx) => {
  const r = open(ctx, 60_000)
  const signed = await record(ctx.pool, 1)
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  ctx.manager.answer = async () => { await gate; return signed }
  const both = Promise.all([r.resolve(NAME), r.resolve(NAME)])
  release()
  assert.equal((await both).map(x => x.seq), [1, 1])
  assert.is(ctx.manager.calls, 1)
  assert.is((await r.resolve(NAME)).from, 'fresh')
  assert.is(ctx.manager.calls, 1)
  await r.close()
})

names.run()
