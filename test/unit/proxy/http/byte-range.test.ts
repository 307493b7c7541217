import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ifMatch, noneMatch } from '../../../../core/etag.ts'
import { parseRange, rangeStillValid } from '../../../../proxy/http/byte-range.ts'

const cases: Array<[string | undefined, number, string]> = [
  [undefined, 100, 'full'],
  ['bytes=0-9', 100, '0-9'],
  ['bytes=90-', 100, '90-99'],
  ['bytes=-10', 100, '90-99'],
  ['bytes=-1000', 100, '0-99'],
  ['bytes=50-5000', 100, '50-99'],
  ['bytes=99-99', 100, '99-99'],
  ['bytes=100-', 100, 'unsatisfiable'],
  ['bytes=100-200', 100, 'unsatisfiable'],
  ['bytes=-0', 100, 'unsatisfiable'],
  ['bytes=0-', 0, 'unsatisfiable'],
  ['bytes=-5', 0, 'unsatisfiable'],
  ['bytes=0-0', 1, '0-0'],
  ['bytes=9-5', 100, 'unsatisfiable'],
  ['bytes=abc', 100, 'unsatisfiable'],
  ['bytes=-', 100, 'unsatisfiable'],
  ['garbage', 100, 'unsatisfiable'],
  ['items=0-5', 100, 'full'],
  ['bytes=0-1,5-9', 100, 'full'],
  [' bytes = 10-19 ', 100, '10-19']
]

test('ranges parse per RFC 9110', () => {
  for (const [header, size, want] of cases) {
    const r = parseRange(header, size)
    const got = r.kind === 'partial' ? `${r.start}-${r.end}` : r.kind
    assert.is(got, want, `${String(header)} on ${size} bytes`)
  }
})

test('conditional headers compare entity tags the way the RFC says', () => {
  const etag = '"bafyabc"'
  assert.ok(noneMatch('"bafyabc"', etag))
  assert.ok(noneMatch('W/"bafyabc", "other"', etag))
  assert.ok(noneMatch('*', etag))
  assert.not.ok(noneMatch('"other"', etag))
  assert.ok(ifMatch(undefined, etag))
  assert.not.ok(ifMatch('W/"bafyabc"', etag))
  assert.ok(rangeStillValid('"bafyabc"', etag, 'Sun, 22 Nov 2026 00:00:00 GMT'))
  assert.not.ok(rangeStillValid('W/"bafyabc"', etag, 'Sun, 22 Nov 2026 00:00:00 GMT'))
  assert.ok(rangeStillValid('Sun, 22 Nov 2026 00:00:00 GMT', etag, 'Sun, 22 Nov 2026 00:00:00 GMT'))
  assert.not.ok(rangeStillValid('Sat, 21 Nov 2026 00:00:00 GMT', etag, 'Sun, 22 Nov 2026 00:00:00 GMT'))
})

test.run()
