/**
 * A blob shared by two contents (a chunk two generations of a name have in
 * common), on both engines: each content counts the physical copy, the
 * minimum is judged per node and blob, and nothing one content does takes
 * the blob away from the other.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { chunkCid, manifestCid } from '../../../../core/ids.ts'
import { ContentLifecycle } from '../../../../manager/catalog/content-lifecycle.ts'
import { KeyCustody } from '../../../../manager/catalog/key-custody.ts'
import { KeySealer } from '../../../../manager/catalog/key-sealing.ts'
import { closeEngines, ENGINES } from '../../../support/catalog-engines.ts'
import { makePool, poolRunner, type TestPool } from '../pool-fixture.ts'

test.after(closeEngines)

/** A second content whose first chunk is `shared`, held where the first content holds it, plus a chunk of its own. */
async function sharingContent (pool: TestPool, shared: string, holders: number[], own: number[]): Promise<{ id: string, chunks: string[] }> {
  const { catalog, peers, nodes } = pool
  const uploadId = `upload-shared-${randomBytes(4).toString('hex')}`
  await catalog.createUpload({ uploadId, name: uploadId, type: 'application/octet-stream', chunkSize: 1024, replicas: 3, createdAt: new Date().toISOString(), publisher: 'test' })
  const mine = chunkCid(randomBytes(16)).toString()
  const chunks = [shared, mine]
  for (const [i, cid] of chunks.entries()) {
    await catalog.addChunk(uploadId, i, cid, 1024)
    for (const h of i === 0 ? holders : own) {
      await catalog.addCopy(uploadId, cid, peers[h], 'confirmed')
      nodes.disk(peers[h]).add(cid)
    }
  }
  const manifest = Buffer.from(JSON.stringify({ chunks, salt: randomBytes(8).toString('hex') }))
  const id = manifestCid(manifest).toString()
  for (const h of own) await catalog.addCopy(uploadId, id, peers[h], 'confirmed')
  await catalog.makeVisible(uploadId, { contentId: id, size: 2048, chunkCount: 2, manifest, expiresAt: null })
  return { id, chunks }
}

const runner = poolRunner

for (const engine of ENGINES) {
  test(`a shared blob counts once per node, for each content that holds it [${engine}]`, async () => {
    const pool = await makePool(5, { engine })
    const first = await pool.addContent([[0, 1, 2], [0, 1, 2]])
    const second = await sharingContent(pool, first.chunks[0], [0, 1, 2], [2, 3, 4])
    const summary = await pool.catalog.replicationSummary(2)
    assert.equal([summary.lowest, summary.belowMin, summary.belowBase], [3, 0, 0])
    assert.is(await pool.catalog.healthyCopiesExcept(first.chunks[0], pool.peers[0]), 2, 'two other nodes, not four rows')
    const counts = await pool.catalog.summaries()
    assert.equal([counts.get(first.id)?.min, counts.get(second.id)?.min], [3, 3])
    const holdings = (await pool.catalog.holdingsByNode()).get(pool.peers[0])
    assert.is(holdings?.copies, 3, 'node 0 holds three blobs (two chunks and a manifest), the shared one once')
    await pool.close()
  })

  test(`deleting one content leaves the blob it shares on the nodes [${engine}]`, async () => {
    const pool = await makePool(5, { engine })
    const first = await pool.addContent([[0, 1, 2], [0, 1, 2]])
    const second = await sharingContent(pool, first.chunks[0], [0, 1, 2], [2, 3, 4])
    const lifecycle = new ContentLifecycle(pool.catalog, new KeyCustody(pool.db, new KeySealer(randomBytes(32))))
    const owed = await lifecycle.delete(first.id, 'content-deleted', 'test', Date.now())
    const owedBlobs = owed.flatMap(o => o.blobs)
    assert.not.ok(owedBlobs.includes(first.chunks[0]), 'the shared chunk is owed by no node')
    assert.ok(owedBlobs.includes(first.chunks[1]) && owedBlobs.includes(first.id), 'what was its own goes')
    assert.equal((await pool.catalog.copiesOf(second.id)).filter(c => c.cid === first.chunks[0]).length, 3, 'the other content still counts its three copies')
    assert.is((await pool.catalog.summaries()).get(second.id)?.min, 3)
    await pool.close()
  })

  test(`a repair copy onto a node that already holds the blob for another content moves nothing [${engine}]`, async () => {
    const pool = await makePool(5, { engine })
    const first = await pool.addContent([[0, 1, 2, 3], [0, 1, 2]])
    const second = await sharingContent(pool, first.chunks[0], [0, 1, 2], [0, 1, 2])
    const outcomes: string[] = []
    const r = runner(pool, outcomes)
    const ordersBefore = pool.nodes.orders.length
    r.submit([{ kind: 'copy', reason: 'repair', content: second.id, cid: first.chunks[0], size: 1024, from: [pool.peers[0]], to: pool.peers[3] }])
    await r.idle()
    assert.is(pool.nodes.orders.length, ordersBefore, 'no order: node 3 has the blob already')
    assert.is(await pool.catalog.copyStateFor(second.id, first.chunks[0], pool.peers[3]), 'confirmed')
    assert.equal(outcomes, ['copy:repair:ok'])
    await pool.close()
  })

  test(`trimming one content's copy of a shared blob only stops that content counting it; a bad copy leaves for all [${engine}]`, async () => {
    const pool = await makePool(5, { engine })
    const first = await pool.addContent([[0, 1, 2, 3], [0, 1, 2]])
    const second = await sharingContent(pool, first.chunks[0], [0, 1, 2, 3], [0, 1, 2])
    const outcomes: string[] = []
    const r = runner(pool, outcomes)
    r.submit([{ kind: 'delete', reason: 'trim', content: first.id, cid: first.chunks[0], node: pool.peers[3] }])
    await r.idle()
    assert.ok(pool.nodes.disk(pool.peers[3]).has(first.chunks[0]), 'the blob stays on node 3')
    assert.is(await pool.catalog.copyStateFor(first.id, first.chunks[0], pool.peers[3]), undefined)
    assert.is(await pool.catalog.copyStateFor(second.id, first.chunks[0], pool.peers[3]), 'confirmed')
    r.submit([{ kind: 'delete', reason: 'bad-copy', content: second.id, cid: first.chunks[0], node: pool.peers[3] }])
    await r.idle()
    assert.not.ok(pool.nodes.disk(pool.peers[3]).has(first.chunks[0]), 'a bad copy goes, whoever held it')
    assert.is(await pool.catalog.copyState(first.chunks[0], pool.peers[3]), undefined)
    assert.equal(outcomes, ['delete:trim:ok', 'delete:bad-copy:ok'])
    await pool.close()
  })
}

test.run()
