import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createContext, type BenchContext } from '../../../bench/context.ts'
import { ResultSink } from '../../../bench/results.ts'

interface Clock { t: number }

function context (budgetMs: number, clock: Clock): BenchContext {
  return createContext({ name: 'try', workDir: '/nonexistent', runs: 3, scale: 0.5, sink: new ResultSink('try', 'a try', () => {}), signal: new AbortController().signal, budgetMs, now: () => clock.t })
}

/** The runs `repeat` allows when each takes `stepMs` on the fake clock. */
function runsMade (ctx: BenchContext, clock: Clock, part: number, parts: number, stepMs: number): number[] {
  const made: number[] = []
  const quiet = process.stderr.write.bind(process.stderr)
  process.stderr.write = () => true
  try {
    for (const run of ctx.repeat(part, parts)) {
      made.push(run)
      clock.t += stepMs
    }
  } finally {
    process.stderr.write = quiet
  }
  return made
}

test('without a budget problem every case makes all its runs', () => {
  const clock = { t: 0 }
  const ctx = context(Infinity, clock)
  assert.equal(runsMade(ctx, clock, 0, 2, 1000), [1, 2, 3])
  assert.is(ctx.cutRuns, 0)
})

test('a case makes more runs only while every later case still has time for its first', () => {
  const clock = { t: 0 }
  const ctx = context(10_000, clock)
  // Runs of 2 s: the first case may go on while a 2 s first run of the second still fits in 10 s.
  assert.equal(runsMade(ctx, clock, 0, 2, 2000), [1, 2, 3])
  // The second case starts at 6 s: a second run ends at 10 s, a third would not fit.
  assert.equal(runsMade(ctx, clock, 1, 2, 2000), [1, 2])
  assert.is(ctx.cutRuns, 1)
  // Past the budget a case still makes one run: no case goes unmeasured.
  assert.equal(runsMade(ctx, clock, 1, 2, 2000), [1])
})

test('what a case costs before its first run counts against the cases after it', () => {
  const clock = { t: 0 }
  const ctx = context(20_000, clock)
  // 6 s of setup, then runs of 1 s: the case costs 7 s before more runs, so two later cases need 14 s.
  clock.t += 6000
  assert.equal(runsMade(ctx, clock, 0, 3, 1000), [1])
  assert.is(ctx.cutRuns, 2)
})

test('sizes scale in whole MiB and never below one', () => {
  const ctx = context(Infinity, { t: 0 })
  assert.is(ctx.size(256 * 1024 * 1024), 128 * 1024 * 1024)
  assert.is(ctx.size(1000), 1024 * 1024)
})

test.run()
