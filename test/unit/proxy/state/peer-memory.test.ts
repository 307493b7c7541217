/**
 * The proxy's memory of its network (manager identity, node addresses): what
 * survives a restart, what is trusted under which manager URL, and that a
 * damaged file costs nothing but the memory.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../../core/log.ts'
import { PeerMemory } from '../../../../proxy/state/peer-memory.ts'
import { makeSigner } from '../../proxy-standins.ts'

const logger = silentLogger()

async function withDir (run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-peer-memory-'))
  try {
    await run(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('the manager and the nodes met are there again after a restart, most recent first', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'network.json')
    const [manager, a, b] = [await makeSigner(), await makeSigner(), await makeSigner()]
    const first = new PeerMemory({ file, logger })
    await first.load()
    first.rememberManager('http://127.0.0.1:9000', { peerId: manager.id, multiaddrs: ['/ip4/127.0.0.1/tcp/4001'], http: 'http://127.0.0.1:9000' })
    first.rememberNodes([
      { peerId: a.id, multiaddrs: ['/ip4/127.0.0.1/tcp/4002', '/ip4/127.0.0.1/tcp/9102/http'] },
      { peerId: b.id, multiaddrs: ['/ip4/127.0.0.1/tcp/4003'] },
      { peerId: 'not-a-peer-id', multiaddrs: ['/ip4/127.0.0.1/tcp/4004'] },
      // The manager is remembered as the manager, not as a node.
      { peerId: manager.id, multiaddrs: ['/ip4/127.0.0.1/tcp/4001'] }
    ])
    await first.save()
    const again = new PeerMemory({ file, logger })
    await again.load()
    assert.is(again.manager('http://127.0.0.1:9000')?.peerId, manager.id)
    assert.is(again.manager('http://127.0.0.1:9999'), undefined, 'another manager URL: the remembered identity is not trusted for it')
    assert.equal(again.nodes(), [
      { peerId: b.id, multiaddrs: ['/ip4/127.0.0.1/tcp/4003'] },
      // Data-plane addresses are not libp2p addresses; only the dialable ones are kept.
      { peerId: a.id, multiaddrs: ['/ip4/127.0.0.1/tcp/4002'] }
    ])
    assert.not.match(await readFile(file, 'utf8'), /not-a-peer-id/)
  })
})

test('only so many nodes are kept; the least recently met go first', async () => {
  await withDir(async (dir) => {
    const memory = new PeerMemory({ file: join(dir, 'network.json'), maxNodes: 2, logger })
    const peers = [await makeSigner(), await makeSigner(), await makeSigner()]
    for (const p of peers) memory.rememberNodes([{ peerId: p.id, multiaddrs: ['/ip4/127.0.0.1/tcp/1'] }])
    memory.rememberNodes([{ peerId: peers[1].id, multiaddrs: ['/ip4/127.0.0.1/tcp/2'] }])
    assert.equal(memory.nodes().map(n => n.peerId), [peers[1].id, peers[2].id])
  })
})

test('a damaged file is ignored, and overwritten by the next save', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'network.json')
    await writeFile(file, '{ not json')
    const memory = new PeerMemory({ file, logger })
    await memory.load()
    assert.equal(memory.nodes(), [])
    const p = await makeSigner()
    memory.rememberNodes([{ peerId: p.id, multiaddrs: ['/ip4/127.0.0.1/tcp/1'] }])
    await memory.save()
    assert.is(JSON.parse(await readFile(file, 'utf8')).nodes[0].peerId, p.id)
  })
})

test.run()
