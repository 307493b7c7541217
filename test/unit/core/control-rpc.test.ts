/**
 * The control protocol's framing against peers that misbehave, over real
 * libp2p hosts on loopback: a peer that may not talk is refused before a
 * byte of its request is read, frames are bounded per direction, and a peer
 * that opens a stream and sends nothing (or half a frame) is cut.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeFrame, readFrame, rpcCall, serveRpc } from '../../../core/control-rpc.ts'
import { createHost, type Host } from '../../../core/host.ts'

const PROTOCOL = '/cdn/test-control/1.0.0'
const READ_MS = 300

let server: Host
let friend: Host
let stranger: Host
const handled: unknown[] = []
const afterReply: string[] = []

test.before(async () => {
  server = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
  friend = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
  stranger = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
  const friendId = friend.peerId.toString()
  await serveRpc(server, PROTOCOL, async (request, _peer, context) => {
    handled.push(request)
    context.afterReply(() => { afterReply.push('after') })
    if ((request as any)?.big === true) return { type: 'echo', pad: 'x'.repeat(200_000) }
    return { type: 'echo', request }
  }, {
    allow: (peer) => peer.toString() === friendId,
    maxRequestBytes: 64 * 1024,
    requestReadMs: READ_MS
  })
})

test.after(async () => {
  await Promise.all([server?.stop(), friend?.stop(), stranger?.stop()])
})

async function open (from: Host): Promise<Stream> {
  return await from.dialProtocol(server.getMultiaddrs()[0], PROTOCOL, { signal: AbortSignal.timeout(10_000) })
}

/** What the stream gives back: a frame, or the error that ended it (a reset, a cut). */
async function outcome (stream: Stream, deadlineMs = 20_000): Promise<{ reply?: any, error?: string }> {
  const deadline = AbortSignal.timeout(deadlineMs)
  try {
    const reply = await Promise.race([
      readFrame(stream),
      new Promise((_resolve, reject) => { deadline.addEventListener('abort', () => { reject(new Error('still open at the test deadline')) }) })
    ])
    return { reply }
  } catch (err) {
    if (deadline.aborted) throw err
    return { error: String(err) }
  }
}

test('a friend gets its reply, and afterReply work runs once the reply is out', async () => {
  const reply: any = await rpcCall(friend, server.getMultiaddrs()[0], PROTOCOL, { hello: 1 }, { timeout: 10_000 })
  assert.equal(reply, { type: 'echo', request: { hello: 1 } })
  assert.equal(afterReply, ['after'])
})

test("a stranger is refused without its frame being read: the announced 100 MB never has to arrive", async () => {
  const before = handled.length
  const stream = await open(stranger)
  // Only the length prefix of a frame far over any cap; a server reading first would wait for the rest.
  const header = Buffer.alloc(4)
  header.writeUInt32BE(100 * 1024 * 1024)
  stream.send(header)
  const { reply } = await outcome(stream)
  assert.is(reply?.type, 'error')
  assert.is(reply?.code, 'ERR_FORBIDDEN')
  assert.is(handled.length, before, 'the handler never ran')
})

test('a stranger that sends nothing at all is refused at once too', async () => {
  const stream = await open(stranger)
  const { reply } = await outcome(stream)
  assert.is(reply?.code, 'ERR_FORBIDDEN')
})

test('a frame over the request cap is refused from its length alone', async () => {
  const before = handled.length
  const stream = await open(friend)
  const header = Buffer.alloc(4)
  header.writeUInt32BE(64 * 1024 + 1)
  stream.send(header)
  const { reply } = await outcome(stream)
  assert.is(reply?.code, 'ERR_PROTOCOL')
  assert.match(reply?.message, /cap/)
  assert.is(handled.length, before)
})

test('a peer that opens a stream and sends nothing is cut after the read deadline', async () => {
  const before = handled.length
  const stream = await open(friend)
  const r = await outcome(stream)
  assert.is(r.reply, undefined, 'no reply for a request that never came')
  assert.type(r.error, 'string')
  assert.is(handled.length, before)
})

test('half a frame, then silence, is cut too', async () => {
  const stream = await open(friend)
  const frame = encodeFrame({ hello: 'world' })
  stream.send(frame.subarray(0, frame.length - 3))
  const r = await outcome(stream)
  assert.is(r.reply, undefined)
  assert.type(r.error, 'string')
})

test('a reply over the caller\'s cap is refused by the caller', async () => {
  try {
    await rpcCall(friend, server.getMultiaddrs()[0], PROTOCOL, { big: true }, { timeout: 10_000, maxReplyBytes: 100_000 })
    assert.unreachable('an oversize reply was accepted')
  } catch (err: any) {
    assert.ok(err.code === 'ERR_PROTOCOL' || /buffer/i.test(String(err)), String(err))
  }
  const fits: any = await rpcCall(friend, server.getMultiaddrs()[0], PROTOCOL, { big: true }, { timeout: 10_000, maxReplyBytes: 300_000 })
  assert.is(fits.pad.length, 200_000)
})

test.run()
