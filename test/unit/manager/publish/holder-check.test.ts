/**
 * The holder check of a generation just stored (manager/publish/holder-check.ts):
 * a copy is lost only when its holder answers a have-bitmap without it; a
 * holder that cannot say loses nothing; a chunk that appears twice is held
 * when either of its places is marked; lost copies leave the catalog and
 * only blobs left short of R are returned.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { bitmapOf } from '../../../../core/data-plane-wire.ts'
import { silentLogger } from '../../../../core/log.ts'
import { checkHolders, lostCopies, type HaveFetch } from '../../../../manager/publish/holder-check.ts'

interface Row { content: string, cid: string, node: string, state: 'pending' | 'confirmed' | 'suspect' }

function fakeCatalog (rows: Row[]) {
  const removed: string[] = []
  return {
    removed,
    copiesOf: async (content: string) => rows.filter(r => r.content === content),
    removeCopy: async (cid: string, node: string) => {
      removed.push(`${cid}@${node}`)
      for (let i = rows.length - 1; i >= 0; i--) if (rows[i].cid === cid && rows[i].node === node) rows.splice(i, 1)
    },
    countedHolders: async (cids: readonly string[]) => new Map(cids.map(cid => [cid, [...new Set(rows.filter(r => r.cid === cid && r.state === 'confirmed').map(r => r.node))]]))
  }
}

const logger = silentLogger()
const cids = ['a', 'b', 'a', 'c']
const rows = (): Row[] => [
  { content: 'up', cid: 'a', node: 'n1', state: 'confirmed' },
  { content: 'up', cid: 'a', node: 'n2', state: 'confirmed' },
  { content: 'up', cid: 'b', node: 'n1', state: 'confirmed' },
  { content: 'up', cid: 'b', node: 'n2', state: 'confirmed' },
  { content: 'up', cid: 'c', node: 'n2', state: 'confirmed' },
  { content: 'up', cid: 'c', node: 'n3', state: 'pending' },
  { content: 'up', cid: 'manifest', node: 'n3', state: 'confirmed' }
]

test('only a holder that answers without a chunk loses it; a chunk twice in the content counts at either place', async () => {
  const answers: Record<string, Uint8Array | undefined> = {
    n1: bitmapOf([1, 2], 4), // a only at its second place: held
    n2: bitmapOf([0, 2, 3], 4), // b missing: lost
    n3: undefined // cannot say (and holds nothing confirmed of the chunks anyway)
  }
  const have: HaveFetch = async (node) => answers[node]
  const lost = await lostCopies({ catalog: fakeCatalog(rows()), have, logger }, 'up', 'content', cids, AbortSignal.timeout(1000))
  assert.equal(lost, [{ cid: 'b', node: 'n2' }])
})

test('lost copies leave the catalog; only blobs short of R are returned', async () => {
  const catalog = fakeCatalog(rows())
  const have: HaveFetch = async (node) => node === 'n2' ? bitmapOf([], 4) : undefined
  const short = await checkHolders({ catalog, have, logger }, 'up', 'content', cids, 2, AbortSignal.timeout(1000))
  assert.equal(catalog.removed.sort(), ['a@n2', 'b@n2', 'c@n2'])
  assert.equal([...short].sort(), ['a', 'b', 'c'])
  const whole = await checkHolders({ catalog: fakeCatalog(rows()), have: async () => bitmapOf([0, 1, 2, 3], 4), logger }, 'up', 'content', cids, 2, AbortSignal.timeout(1000))
  assert.is(whole.size, 0)
})

test.run()
