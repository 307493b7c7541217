import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { signRecord, verifyRecord, type CapabilityBody } from '../../../core/signed-record.ts'

const key = await generateKeyPair('Ed25519')
const iss = peerIdFromPrivateKey(key).toString()
const other = await generateKeyPair('Ed25519')
const now = Date.now()
const cap: CapabilityBody = { kind: 'capability', iss, iat: now, exp: now + 60_000, content: 'bafy-test' }

async function status (p: Promise<unknown>): Promise<number> {
  try { await p; return 0 } catch (err: any) { return err.status }
}

test('a signed capability verifies and gives back its body', async () => {
  const rec = await signRecord(cap, key)
  const v = await verifyRecord<CapabilityBody>(rec, { kind: 'capability', trusted: [iss] })
  assert.is(v.body.content, 'bafy-test')
})

test('expired, foreign, re-kinded, forged and malformed records are refused', async () => {
  const rec = await signRecord(cap, key)
  assert.is(await status(verifyRecord(rec, { kind: 'capability', trusted: [iss], now: now + 120_000 })), 403)
  assert.is(await status(verifyRecord(rec, { kind: 'capability', trusted: [peerIdFromPrivateKey(other).toString()] })), 403)
  assert.is(await status(verifyRecord(rec, { kind: 'node-list', trusted: [iss] })), 403)
  const forged = await signRecord({ ...cap, iss }, other)
  assert.is(await status(verifyRecord(forged, { kind: 'capability', trusted: [iss] })), 403)
  const [body, sig] = rec.split('.')
  const widened = Buffer.from(JSON.stringify({ ...cap, content: 'bafy-other' })).toString('base64url')
  assert.is(await status(verifyRecord(`${widened}.${sig}`, { kind: 'capability', trusted: [iss] })), 403)
  assert.is(await status(verifyRecord(`${body}`, { kind: 'capability', trusted: [iss] })), 400)
  assert.is(await status(verifyRecord('not json.x', { kind: 'capability', trusted: [iss] })), 400)
  assert.is(await status(verifyRecord(42, { kind: 'capability', trusted: [iss] })), 400)
})

test.run()
