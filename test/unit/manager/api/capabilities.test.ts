/**
 * Capabilities (manager/capabilities.ts): issued under the pool's key for one
 * content, refused when forged, foreign, expired, malformed or for another content.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { randomBytes } from 'node:crypto'
import { BadInputError, ForbiddenError } from '../../../../core/errors.ts'
import { manifestCid } from '../../../../core/ids.ts'
import { signRecord } from '../../../../core/signed-record.ts'
import { Capabilities, DEFAULT_CAPABILITY_TTL_SECONDS } from '../../../../manager/api/capabilities.ts'

const key = await generateKeyPair('Ed25519')
const peerId = peerIdFromPrivateKey(key).toString()
let now = Date.now()
const caps = new Capabilities({ signer: { privateKey: key, peerId }, now: () => now })
const content = manifestCid(randomBytes(16)).toString()
const other = manifestCid(randomBytes(16)).toString()

async function rejects (p: Promise<unknown>, cls: new (...a: any[]) => Error, what: string): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof cls, `${what}: expected ${cls.name}, got ${String(err)}`)
}

test('a capability opens its content until it expires (default 24 h)', async () => {
  const issued = await caps.issue(content)
  assert.is(issued.expiresAt, now + DEFAULT_CAPABILITY_TTL_SECONDS * 1000)
  assert.match(issued.capability, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
  const body = await caps.check(issued.capability, content)
  assert.equal({ kind: body.kind, content: body.content, iss: body.iss }, { kind: 'capability', content, iss: peerId })
  const saved = now
  now = issued.expiresAt - 1
  await caps.check(issued.capability, content)
  now = issued.expiresAt
  await rejects(caps.check(issued.capability, content), ForbiddenError, 'expired')
  now = saved
})

test('a capability for another content, a forged or foreign one, or a node list is 403', async () => {
  const { capability } = await caps.issue(content, 60)
  await rejects(caps.check(capability, other), ForbiddenError, 'other content')

  // Forged: the body changed to name another content, the signature kept.
  const [body, sig] = capability.split('.')
  const changed = { ...JSON.parse(Buffer.from(body, 'base64url').toString('utf8')), content: other }
  await rejects(caps.check(`${Buffer.from(JSON.stringify(changed)).toString('base64url')}.${sig}`, other), ForbiddenError, 'forged')
  // Forged: a random signature.
  await rejects(caps.check(`${body}.${randomBytes(64).toString('base64url')}`, content), ForbiddenError, 'bad signature')
  // Foreign: signed by a key that is not the pool's.
  const stranger = await generateKeyPair('Ed25519')
  const foreign = await signRecord({ kind: 'capability', iss: peerIdFromPrivateKey(stranger).toString(), iat: now, exp: now + 60_000, content } as never, stranger)
  await rejects(caps.check(foreign, content), ForbiddenError, 'foreign')
  // Another kind of record under the right key.
  const list = await signRecord({ kind: 'node-list', iss: peerId, iat: now, exp: now + 60_000, seq: 1, nodes: [] } as never, key)
  await rejects(caps.check(list, content), ForbiddenError, 'node list')
})

test('a malformed capability is 400; lifetimes outside 1 s to a year are refused', async () => {
  for (const bad of ['', 'nodot', 'a.b.c', '!!!.###', 'e30.' + 'A'.repeat(10)]) {
    const err = await caps.check(bad, content).then(() => undefined, (e: unknown) => e)
    assert.ok(err instanceof BadInputError || err instanceof ForbiddenError, `${bad}: ${String(err)}`)
  }
  await rejects(caps.check('nodot', content), BadInputError, 'no dot')
  for (const ttl of [0, -1, 1.5, 366 * 86400]) {
    await rejects(caps.issue(content, ttl), BadInputError, `ttl ${ttl}`)
  }
})

test.run()
