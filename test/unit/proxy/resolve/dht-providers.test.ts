import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { manifestCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { DhtProviderFinder, type ProviderRoutingHost } from '../../../../proxy/resolve/dht-providers.ts'

const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
const cid = manifestCid(Buffer.from('a content'))

/** A host whose DHT answers each search from a script: the providers of the n-th search. */
function host (answers: string[][]): ProviderRoutingHost & { searches: number } {
  const h = {
    searches: 0,
    getConnections: () => [{}],
    peerStore: { get: async () => { throw new Error('not known') } },
    contentRouting: {
      async * findProviders () {
        const ids = answers[h.searches++] ?? []
        for (const id of ids) yield { id: peerIdFromString(id), multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/9103/http')] }
      }
    }
  }
  return h as unknown as ProviderRoutingHost & { searches: number }
}

async function found (finder: DhtProviderFinder): Promise<string[]> {
  const out: string[] = []
  for await (const s of finder.findProviders(cid, { signal: AbortSignal.timeout(5000) })) out.push(`${s.id} ${s.url}`)
  return out
}

test('a search that found nobody is tried again: the peers still there are asked before the content is unfound', async () => {
  const h = host([[], [], [peer]])
  assert.equal(await found(new DhtProviderFinder({ host: h, logger: silentLogger() })), [`${peer} http://127.0.0.1:9103`])
  assert.is(h.searches, 3)
})

test('a search that found providers is not repeated, and one that keeps finding nobody gives up', async () => {
  const once = host([[peer]])
  await found(new DhtProviderFinder({ host: once, logger: silentLogger() }))
  assert.is(once.searches, 1)
  const never = host([])
  assert.equal(await found(new DhtProviderFinder({ host: never, logger: silentLogger() })), [])
  assert.is(never.searches, 5)
})

test.run()
