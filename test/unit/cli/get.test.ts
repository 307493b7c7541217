/**
 * `cdn get` with the links people are given: a capability link opens a
 * private content (the capability reaching the manager as a header), a key
 * link works without the manager's consent, and a bad link is refused
 * without the secret being repeated in the message.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeKey } from '../../../core/chunk-crypto.ts'
import { BadInputError, ForbiddenError } from '../../../core/errors.ts'
import { silentLogger } from '../../../core/log.ts'
import { get, parseTarget } from '../../../cli/get.ts'
import {
  makeContent, makeSigner, startStandInManager, startStandInNode,
  type StandInManager, type StandInNode, type TestContent
} from '../proxy-standins.ts'

interface Ctx { dir: string, manager: StandInManager, node: StandInNode, secret: TestContent, capability: string }

const test = suite<Ctx>('cdn get links')
const CAP = `${Buffer.from('{"kind":"capability"}').toString('base64url')}.${Buffer.from('signature-bytes').toString('base64url')}`

test.before(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-get-'))
  const signer = await makeSigner()
  ctx.manager = await startStandInManager(signer)
  ctx.node = await startStandInNode()
  ctx.secret = await makeContent({ size: 3 * 16 * 1024 + 1, chunkSize: 16 * 1024, signer, name: 'secret.bin' })
  ctx.capability = CAP
  ctx.node.hold(ctx.secret)
  ctx.manager.publish(ctx.secret, [ctx.node], { private: true, capability: CAP })
})

test.after(async (ctx) => {
  await ctx.node?.close()
  await ctx.manager?.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

test('links are parsed: an id, a key link, a capability link', () => {
  const id = 'bagaaierajp2relzuivkmko66f25yzuvx4piwacwwghbyljoxztrdy54fiwna'
  assert.equal(parseTarget(id), { id })
  assert.is(parseTarget(`cdn://${id}?cap=${CAP}`).capability, CAP)
  assert.is(parseTarget(`cdn://${id}?k=${encodeKey(new Uint8Array(32).fill(1))}`).key?.length, 32)
  for (const bad of [`cdn://${id}?cap=not%20a%20capability-SECRET`, `cdn://${id}?k=SECRET`, 'cdn://[SECRET']) {
    try {
      parseTarget(bad)
      assert.unreachable(bad)
    } catch (err) {
      assert.instance(err, BadInputError)
      assert.not.match((err as Error).message, /SECRET/, 'the message never repeats the link')
    }
  }
})

test('a capability link downloads a private content; the manager saw the capability as a header', async (ctx) => {
  const out = join(ctx.dir, 'secret.out')
  const r = await get(`cdn://${ctx.secret.id}?cap=${ctx.capability}`, { manager: ctx.manager.url, output: out, json: true, logger: silentLogger() })
  assert.is(r.name, 'secret.bin')
  assert.ok((await readFile(out)).equals(ctx.secret.plaintext))
  assert.ok(ctx.manager.capabilities.includes(ctx.capability))
})

test('without the capability, or with a wrong one, the manager\'s refusal is a ForbiddenError and no file is left', async (ctx) => {
  for (const target of [ctx.secret.id, `cdn://${ctx.secret.id}?cap=${CAP.slice(0, -3)}AAA`]) {
    const out = join(ctx.dir, 'refused.out')
    try {
      await get(target, { manager: ctx.manager.url, output: out, json: true, logger: silentLogger() })
      assert.unreachable('refused')
    } catch (err) {
      assert.instance(err, ForbiddenError)
    }
    assert.not.ok((await readdir(ctx.dir)).some(f => f.startsWith('refused.out')))
  }
})

test.run()
