import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { resolvePeer } from '../../../cli/node-commands.ts'
import { formatStatus, shortPeerIds } from '../../../cli/pool-commands.ts'

const A = '12D3KooWB9teQ7jcwYna25hZWqqeKLVj4YV12aFHbrvvSGBUTNec'
const B = '12D3KooWRDGfMbt5K3PhJGjGH34QsgJiuhK9sowokeb5ph4WPEpE'
// Shares its last 12 characters with A: the tables must print 13 of both.
const C = `12D3KooWNPBS5muEA6X77bauE4iCCWMzAh2vbyCJZp4997X${A.slice(-12)}`

test('tables print the shortest suffix (8 characters at least) that tells the pool\'s peers apart', () => {
  const short = shortPeerIds([A, B, C])
  assert.equal([...short.values()], [A.slice(-13), B.slice(-8), C.slice(-13)])
  const table = formatStatus({ nodes: [A, B, C].map(peerId => ({ peerId, state: 'alive', used: 0, capacity: 1e9, http: 'http://10.77.0.11:9000' })), repairBlocked: [] })
  assert.equal(table.split('\n').slice(1).map(l => l.split(/\s+/)[0]), [A.slice(-13), B.slice(-8), C.slice(-13)])
})

test('every command takes back what the tables print: a unique suffix or prefix, or the whole id', async () => {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ nodes: [A, B, C].map(peerId => ({ peerId, state: 'alive', copies: 0, contents: 0, health: 'ok' })) }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const api = { manager: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
  try {
    const short = shortPeerIds([A, B, C])
    for (const id of [A, B, C]) assert.is((await resolvePeer(api, short.get(id)!)).peerId, id)
    assert.is((await resolvePeer(api, B)).peerId, B)
    assert.is((await resolvePeer(api, '12D3KooWRDG')).peerId, B)
    assert.is((await resolvePeer(api, `${A.slice(0, 8)}…${A.slice(-13)}`)).peerId, A)
    assert.match(await failure(resolvePeer(api, A.slice(-12))), /matches 2 nodes/)
    assert.match(await failure(resolvePeer(api, 'zzzzzzzz')), /no node zzzzzzzz/)
  } finally {
    server.close()
  }
})

async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
  return 'did not fail'
}

test.run()
