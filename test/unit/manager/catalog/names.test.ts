/**
 * The name store (manager/catalog/names.ts) on both engines: generations are
 * numbered in order, the first publisher owns a name, keep says which fall
 * beyond it, and a restart keeps everything.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ForbiddenError } from '../../../../core/errors.ts'
import { NameStore, type AppendRequest } from '../../../../manager/catalog/names.ts'
import { eachEngine } from '../../../support/catalog-engines.ts'
import { rejects } from '../../../support/rejects.ts'

const owner = (id: string) => (o: string): boolean => o === id

function req (over: Partial<AppendRequest> & { content: string }): AppendRequest {
  return { name: 'films/launch.mp4', by: 'alice', mayAppend: owner('alice'), size: 100, now: 1000, ...over }
}

eachEngine(test, 'generations are numbered 1, 2, 3 and listed oldest first; the newest is the latest', async (open) => {
  const names = new NameStore(await open())
  assert.is((await names.append(req({ content: 'c1', size: 10, now: 1000 }))).seq, 1)
  assert.is((await names.append(req({ content: 'c2', size: 20, now: 2000 }))).seq, 2)
  assert.is((await names.append(req({ content: 'c3', size: 30, now: 3000 }))).seq, 3)
  assert.equal((await names.generations('films/launch.mp4')).map(g => [g.seq, g.content, g.size, g.createdAt]), [[1, 'c1', 10, 1000], [2, 'c2', 20, 2000], [3, 'c3', 30, 3000]])
  assert.is((await names.latest('films/launch.mp4'))?.content, 'c3')
  assert.is((await names.generation('films/launch.mp4', 2))?.content, 'c2')
  assert.is(await names.latest('other'), undefined)
  assert.equal(await names.get('films/launch.mp4'), { name: 'films/launch.mp4', owner: 'alice', createdAt: 1000, keep: null })
})

eachEngine(test, 'the first publisher owns a name: another is refused and nothing is appended', async (open) => {
  const names = new NameStore(await open())
  await names.append(req({ content: 'c1' }))
  await rejects(async () => await names.append(req({ content: 'evil', by: 'bob', mayAppend: owner('bob') })), (e: unknown) => e instanceof ForbiddenError && /belongs to another publisher/.test(e.message))
  assert.equal((await names.generations('films/launch.mp4')).map(g => g.content), ['c1'])
  assert.is((await names.get('films/launch.mp4'))?.owner, 'alice')
})

eachEngine(test, 'keep N names the generations beyond the newest N; dropped rows never bring a number back', async (open) => {
  const names = new NameStore(await open())
  assert.equal((await names.append(req({ content: 'c1', keep: 2 }))).beyondKeep, [])
  assert.equal((await names.append(req({ content: 'c2' }))).beyondKeep, [])
  const third = await names.append(req({ content: 'c3' }))
  assert.equal(third.beyondKeep.map(g => g.content), ['c1'])
  await names.drop('films/launch.mp4', 1)
  // A generation whose delete failed stays, and is named again next time.
  const fourth = await names.append(req({ content: 'c4' }))
  assert.is(fourth.seq, 4)
  assert.equal(fourth.beyondKeep.map(g => g.content), ['c2'])
  // Keep changes with the publish that says so.
  const fifth = await names.append(req({ content: 'c5', keep: 1 }))
  assert.equal(fifth.beyondKeep.map(g => g.content), ['c2', 'c3', 'c4'])
  assert.is((await names.get('films/launch.mp4'))?.keep, 1)
})

eachEngine(test, 'names and generations survive a restart', async (open) => {
  const first = new NameStore(await open())
  await first.append(req({ content: 'c1', keep: 3 }))
  await first.append(req({ content: 'c2' }))
  const again = new NameStore(await open())
  assert.is((await again.latest('films/launch.mp4'))?.seq, 2)
  assert.is((await again.append(req({ content: 'c3' }))).seq, 3)
  assert.is((await again.get('films/launch.mp4'))?.keep, 3)
})

eachEngine(test, 'two publishes under one name at once get distinct numbers', async (open) => {
  const db = await open()
  const names = new NameStore(db)
  const seqs = await Promise.all(['a', 'b', 'c', 'd'].map(async c => (await names.append(req({ content: c }))).seq))
  assert.equal([...seqs].sort(), [1, 2, 3, 4])
})

test.run()
