/**
 * What a viewer reads on the proxy's dashboard: sizes with sensible units,
 * short source names, health in plain words, the chunk strip's marks, the
 * speed history and the page's embedded first snapshot.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { runInNewContext } from 'node:vm'
import { embedJson, esc, formatBytes, formatRate, formatShare, shortId, WEB_FORMAT_SCRIPT } from '../../../../core/web-format.ts'
import { nextChunkMark } from '../../../../proxy/http/chunk-strip.ts'
import { DownloadTracker } from '../../../../proxy/http/download-tracker.ts'
import { hostPort, nameSources, sourceHealth } from '../../../../proxy/http/source-health.ts'
import { SpeedHistory } from '../../../../proxy/http/speed-history.ts'
import { dashboardPage } from '../../../../proxy/http/dashboard-page.ts'
import type { ChunkState } from '../../../../proxy/fetch/reader-types.ts'

const PEER = '12D3KooWGxEqPNU2w1WmJb7mNnZkZskUfNDfbaUrnFfc21FzSbto'

test('sizes get the unit that fits: a 100-byte Range is 100 B, not 0.0 MiB', () => {
  assert.is(formatBytes(100), '100 B')
  assert.is(formatBytes(0), '0 B')
  assert.is(formatBytes(1536), '1.50 KiB')
  assert.is(formatBytes(12.5 * 1048576), '12.5 MiB')
  assert.is(formatBytes(300 * 1048576), '300 MiB')
  assert.is(formatBytes(3 * 1024 ** 3), '3.00 GiB')
  assert.is(formatBytes(-1), '–')
  assert.is(formatRate(2 * 1048576), '2.00 MiB/s')
  assert.is(formatShare(100, 100), '100%')
  assert.is(formatShare(1, 300), '0.3%')
  assert.is(formatShare(0, 0), '100%')
})

test('the browser runs the very same formatting code', () => {
  const ctx: Record<string, unknown> = {}
  runInNewContext(`${WEB_FORMAT_SCRIPT}\nout = [formatBytes(100), formatRate(1536), shortId('${PEER}'), esc('<b>')]`, ctx)
  assert.equal(JSON.parse(JSON.stringify(ctx.out)), ['100 B', '1.50 KiB/s', '12D3Ko…Sbto', '&#60;b&#62;'])
})

test('short names keep the first and last characters; short ids stay whole', () => {
  assert.is(shortId(PEER), '12D3Ko…Sbto')
  assert.is(shortId('cache'), 'cache')
  assert.is(hostPort('http://127.0.0.1:4001'), '127.0.0.1:4001')
  assert.is(hostPort(''), '')
  assert.is(hostPort('not a url'), '')
})

test('health in plain words: fast, slow (penalised or far behind the best), failing, unused', () => {
  const ok = { penalty: 0, bytesPerSecond: 4e6, bytes: 1e6 }
  assert.is(sourceHealth(ok, 4e6), 'fast')
  assert.is(sourceHealth({ ...ok, penalty: 800 }, 4e6), 'fast', 'one lost hedge race is noise')
  assert.is(sourceHealth({ ...ok, penalty: 2000 }, 4e6), 'slow')
  assert.is(sourceHealth({ ...ok, bytesPerSecond: 0.5e6 }, 4e6), 'slow')
  assert.is(sourceHealth({ ...ok, penalty: 4000 }, 4e6), 'failing')
  assert.is(sourceHealth({ penalty: 0, bytesPerSecond: 1e7, bytes: 0 }, 4e6), 'unused')
  const named = nameSources([
    { source: PEER, http: 'http://127.0.0.1:1', rttMs: 3, bytesPerSecond: 1e6, penalty: 0, inFlight: 0, bytes: 10 },
    { source: 'other', http: '', rttMs: 3, bytesPerSecond: 1e6, penalty: 16000, inFlight: 0, bytes: 20 }
  ])
  assert.equal(named.map(s => [s.name, s.address, s.health]), [['other', '', 'failing'], ['12D3Ko…Sbto', '127.0.0.1:1', 'fast']])
})

test('a chunk mark only moves forward, and remembers hedges and bad copies', () => {
  const run = (...states: ChunkState[]): string => states.reduce((m, s) => nextChunkMark(m, s), '.')
  assert.is(run('requested'), 'r')
  assert.is(run('requested', 'fetched'), 'f')
  assert.is(run('requested', 'hedged', 'fetched'), 'H')
  assert.is(run('requested', 'bad-copy', 'requested', 'fetched'), 'X')
  assert.is(run('requested', 'failed'), '!')
  assert.is(run('requested', 'failed', 'requested'), 'r')
  assert.is(run('cached'), 'c')
  assert.is(run('requested', 'fetched', 'requested'), 'f', 'a late request does not undo a fetched chunk')
})

test('the tracker draws a strip per download and feeds the speed history from progress', () => {
  let now = 1_000_000
  const t = new DownloadTracker({ now: () => now })
  const v = t.start('c1', 'a.bin', [0, 4 * 1024 - 1], [10, 14])
  assert.is(v.chunks?.marks, '....')
  t.chunk(v, 10, 'requested')
  t.chunk(v, 11, 'cached')
  t.chunk(v, 14, 'requested')
  assert.is(v.chunks?.marks, 'rc..', 'chunks outside the download (read-ahead) are not drawn')
  t.progress(v, 2048, { a: 1024, cache: 1024 })
  now += 1000
  t.progress(v, 4096, { a: 3072, cache: 1024 })
  now += 1000
  const s = t.history()
  assert.is(s.t.length, 60, 'at least a minute is drawn')
  assert.is(s.total.at(-2), 2048)
  assert.is(s.total.at(-1), 2048)
  assert.equal(s.sources.map(x => x.source), ['a', 'cache'])
  t.end(v, 'done')
  assert.is(t.snapshot().recent[0].chunks?.marks, 'rc..')
})

test('the speed history sums sources beyond the drawn ones as others and forgets old seconds', () => {
  let now = 0
  const h = new SpeedHistory({ windowSeconds: 120, maxSources: 2, now: () => now })
  h.add('a', 100)
  h.add('b', 50)
  h.add('c', 10)
  now = 1000
  let s = h.series()
  assert.equal(s.sources.map(x => [x.source, x.rates.at(-1)]), [['a', 100], ['others', 60]])
  now = 500_000
  s = h.series()
  assert.equal(s, { t: [], total: [], sources: [] })
})

test('the dashboard page carries its first snapshot, safely embedded', () => {
  const snap = { at: 1, downloads: { active: [], recent: [] }, sources: [], speed: { t: [], total: [], sources: [] }, memory: { used: 0, max: 1, reads: 0 } }
  const html = dashboardPage({ ...snap, downloads: { active: [{ n: 1, id: 'x', name: '</script><script>alert(1)</script>', range: [0, 0], done: 0, total: 1, startedAt: 0, state: 'active', bytesPerSecond: 0, sources: {} }], recent: [] } } as any)
  assert.not.match(html, '</script><script>alert(1)')
  const json = /<script type="application\/json" id="snapshot">([^<]*)<\/script>/.exec(html)?.[1]
  assert.ok(json != null)
  assert.is(JSON.parse(json).downloads.active[0].name, '</script><script>alert(1)</script>')
  assert.match(html, "EventSource('/api/dashboard/events')")
  assert.is(esc('"'), '&#34;')
  assert.is(embedJson('<!--'), '"\\u003c!--"')
})

test.run()
