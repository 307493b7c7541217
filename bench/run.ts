/**
 * The benchmark harness: `npm run bench` runs every benchmark, `npm run bench
 * -- <name>…` the named ones. Each prints one JSON line per measurement on
 * stdout (progress goes to stderr), writes `bench/results/<name>.json`, and
 * the run ends by rewriting `bench/results/REPORT.md` and `chart.svg`.
 *
 *   node bench/run.ts [name…] [--runs 3] [--budget 14] [--scale 1] [--out DIR] [--keep] [--list]
 *
 * --budget is in minutes for the whole run (0: none). Each benchmark gets a
 * share; a case always makes one run and makes more, up to --runs, while they
 * fit in its share. Setting up (starting networks, publishing) is never cut,
 * so a slow build can still overrun; the log says how long each part took.
 * --scale multiplies every content size (0.05 for a quick try of the harness);
 * --out writes the results and the report elsewhere than bench/results (for
 * a profiling run, say); --keep leaves the work directories (data, logs).
 * BENCH_CPU_PROF=DIR profiles every process started (DIR/<role>/*.cpuprofile);
 * `node bench/profile-summary.ts DIR/proxy/*` says where the time went.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BadInputError, describeError, InterruptedError } from '../core/errors.ts'
import { aggregate } from './benchmarks/aggregate.ts'
import { aggregateHosts } from './benchmarks/aggregate-hosts.ts'
import { differential } from './benchmarks/differential.ts'
import { helia } from './benchmarks/helia.ts'
import { memory } from './benchmarks/memory.ts'
import { origin } from './benchmarks/origin.ts'
import { publish } from './benchmarks/publish.ts'
import { tail } from './benchmarks/tail.ts'
import { ttfb } from './benchmarks/ttfb.ts'
import { createContext, type Benchmark } from './context.ts'
import { writeReport } from './report.ts'
import { RESULTS_DIR, ResultSink, writeResults } from './results.ts'

/** In the order `npm run bench` runs them: the quick ones first, so a broken build shows early. */
export const BENCHMARKS: Benchmark[] = [origin, ttfb, aggregate, aggregateHosts, helia, tail, memory, publish, differential]

/** Each benchmark's share of the time budget, from how long they take here. */
const WEIGHTS: Record<string, number> = { origin: 0.04, ttfb: 0.04, aggregate: 0.16, 'aggregate-hosts': 0.1, helia: 0.1, tail: 0.12, memory: 0.16, publish: 0.2, differential: 0.08 }

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '3' },
    budget: { type: 'string', default: '14' },
    scale: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string', default: RESULTS_DIR },
    list: { type: 'boolean', default: false }
  }
})

if (values.list) {
  for (const b of BENCHMARKS) process.stdout.write(`${b.name.padEnd(10)} ${b.about}\n`)
  process.exit(0)
}

const runs = Number(values.runs)
const scale = Number(values.scale)
const budgetMs = Number(values.budget) * 60_000
if (!Number.isSafeInteger(runs) || runs < 1) throw new BadInputError('--runs must be a whole number ≥ 1')
if (!(scale > 0 && scale <= 16)) throw new BadInputError('--scale must be a number in (0, 16]')
if (!(budgetMs >= 0)) throw new BadInputError('--budget must be minutes ≥ 0')
const unknown = positionals.filter(p => !BENCHMARKS.some(b => b.name === p))
if (unknown.length > 0) throw new BadInputError(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map(b => b.name).join(', ')}`)
const selected = positionals.length === 0 ? BENCHMARKS : BENCHMARKS.filter(b => positionals.includes(b.name))

const controller = new AbortController()
const onSignal = (): void => {
  process.stderr.write('\ninterrupted: stopping every process started…\n')
  controller.abort(new InterruptedError())
}
process.once('SIGINT', onSignal)
process.once('SIGTERM', onSignal)

const t0 = performance.now()
const timings: Array<{ bench: string, seconds: number, ok: boolean }> = []
for (const [i, bench] of selected.entries()) {
  if (controller.signal.aborted) break
  // What earlier benchmarks left unused is shared out among the rest.
  const left = budgetMs - (performance.now() - t0)
  const weightLeft = selected.slice(i).reduce((sum, b) => sum + (WEIGHTS[b.name] ?? 0.1), 0)
  const share = budgetMs === 0 ? Infinity : Math.max(0, left) * (WEIGHTS[bench.name] ?? 0.1) / weightLeft
  const workDir = await mkdtemp(join(tmpdir(), `cdn-bench-${bench.name}-`))
  const sink = new ResultSink(bench.name, bench.about)
  const ctx = createContext({ name: bench.name, workDir, runs, scale, sink, signal: controller.signal, budgetMs: share })
  const started = performance.now()
  let error: string | undefined
  ctx.log(`starting: ${bench.about} (${runs} runs, ${Number.isFinite(share) ? `${(share / 1000).toFixed(0)} s budget, ` : ''}scale ${scale}, work dir ${workDir})`)
  try {
    await bench.run(ctx)
  } catch (err) {
    error = describeError(err)
    ctx.log(`FAILED: ${error}`)
  } finally {
    if (!values.keep) await rm(workDir, { recursive: true, force: true })
  }
  const seconds = (performance.now() - started) / 1000
  // A failed benchmark still leaves a file, so the report says what could not be measured and why.
  const file = { ...sink.toFile({ runs, scale, budgetSeconds: Number.isFinite(share) ? Math.round(share / 1000) : null, cutRuns: ctx.cutRuns }, seconds), ...(error != null ? { error } : {}) }
  const path = await writeResults(file, values.out)
  timings.push({ bench: bench.name, seconds, ok: error == null })
  ctx.log(`${error == null ? 'done' : 'failed'} in ${seconds.toFixed(0)} s → ${path}`)
}

const report = await writeReport(values.out)
const total = (performance.now() - t0) / 1000
process.stderr.write(`\n${timings.map(t => `${t.bench.padEnd(10)} ${t.seconds.toFixed(0).padStart(5)} s ${t.ok ? '' : 'FAILED'}`).join('\n')}\n`)
process.stderr.write(`all: ${total.toFixed(0)} s; report: ${report.markdown}, ${report.chart}\n`)
process.exitCode = timings.every(t => t.ok) && !controller.signal.aborted ? 0 : 1
