/**
 * The scoreboard's light probe of new sources (their have-bitmap round trip)
 * and its memory bound; the resolver feeding it the probes.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../../core/log.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { ManagerClient } from '../../../../proxy/resolve/manager-client.ts'
import { Resolver } from '../../../../proxy/resolve/resolver.ts'
import { planRequests } from '../../../../proxy/fetch/scheduler.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'
import { makeContent, makeSigner, startStandInManager, startStandInNode } from '../../proxy-standins.ts'

const CHUNK = 1024 * 1024

function first (sb: Scoreboard, holders: string[]): string | undefined {
  return planRequests({ wanted: [0], holders: () => holders, bytes: () => CHUNK, slots: 1, inflightBySource: new Map(), maxPerSource: 4, estimator: sb })[0]?.source
}

test('before any transfer, the first chunk goes to the source whose probe answered quickest', () => {
  const sb = new Scoreboard()
  sb.recordProbe('far', 150)
  sb.recordProbe('near', 3)
  assert.is(first(sb, ['far', 'near']), 'near')
  assert.is(first(sb, ['near', 'far']), 'near')
  // Without probes the two would tie and the first listed would win.
  assert.is(first(new Scoreboard(), ['far', 'near']), 'far')
})

test('a probed source is compared with measured ones by its own RTT and their average throughput', () => {
  const sb = new Scoreboard()
  for (let i = 0; i < 3; i++) sb.recordSuccess('measured', { bytes: CHUNK, ttfbMs: 5, totalMs: 105 })
  sb.recordProbe('new', 400)
  const guess = sb.estimate('new')
  assert.is(guess.rttMs, 400)
  assert.is(guess.throughput, sb.estimate('measured').throughput)
  assert.is(first(sb, ['new', 'measured']), 'measured')
  // Probes never touch the throughput learned from transfers.
  const before = sb.estimate('measured').throughput
  sb.recordProbe('measured', 1)
  assert.is(sb.estimate('measured').throughput, before)
  assert.is(sb.snapshot().find(s => s.id === 'new')?.probes, 1)
})

test('a request overtaken by its duplicate costs a penalty smaller than a timeout', () => {
  const sb = new Scoreboard({ now: () => 0 })
  sb.recordFailure('slow', 'slow')
  sb.recordFailure('dead', 'timeout')
  assert.ok(sb.penaltyMs('slow') > 0)
  assert.ok(sb.penaltyMs('slow') < sb.penaltyMs('dead'))
})

test('the scoreboard forgets the sources idle longest beyond its bound, never one with requests in flight', () => {
  const sb = new Scoreboard({ maxSources: 3 })
  sb.begin('busy', CHUNK)
  for (const s of ['a', 'b', 'c', 'd']) sb.recordProbe(s, 1)
  const ids = sb.snapshot().map(s => s.id).sort()
  assert.equal(ids, ['busy', 'c', 'd'])
})

test('resolving a content probes every source that answers its have-bitmap', async () => {
  const signer = await makeSigner()
  const manager = await startStandInManager(signer)
  const nodes = [await startStandInNode(), await startStandInNode()]
  const deadlines = new DeadlineClock()
  const fetcher = new ChunkFetcher({ deadlines, logger: silentLogger() })
  const client = new ManagerClient({ deadlines }, { url: manager.url })
  try {
    const content = await makeContent({ size: 5000, chunkSize: 1024, signer })
    for (const n of nodes) n.hold(content)
    manager.publish(content, nodes)
    const sb = new Scoreboard()
    const probed: string[] = []
    const resolver = new Resolver({
      manager: client,
      blobs: fetcher,
      haves: fetcher,
      deadlines,
      trusted: () => [signer.id],
      onProbe: (source, rttMs) => { probed.push(source); sb.recordProbe(source, rttMs) },
      logger: silentLogger()
    })
    await resolver.resolve(content.id)
    assert.equal(probed.sort(), nodes.map(n => n.id).sort())
    for (const n of nodes) assert.is(sb.snapshot().find(s => s.id === n.id)?.probes, 1)
  } finally {
    await fetcher.close()
    await client.close()
    deadlines.close()
    for (const n of nodes) await n.close()
    await manager.close()
  }
})

test.run()
