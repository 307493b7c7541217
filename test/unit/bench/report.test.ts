import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildPanels, niceMax, renderSvg } from '../../../bench/report-chart.ts'
import { claims, measurementTable, renderMarkdown } from '../../../bench/report-table.ts'
import { writeReport } from '../../../bench/report.ts'
import { ResultSink, writeResults, type ResultsFile } from '../../../bench/results.ts'
import { median, ratio, summarize } from '../../../bench/stats.ts'

const MiB = 1024 * 1024

function resultsOf (bench: string, lines: Array<Record<string, unknown>>, extra: Partial<ResultsFile> = {}): ResultsFile {
  const sink = new ResultSink(bench, `about ${bench}`, () => {})
  for (const l of lines) sink.emit({ system: 'ours', ...l })
  return { ...sink.toFile({ runs: 3, scale: 1 }, 12.3), ...extra }
}

const sample: ResultsFile[] = [
  resultsOf('publish', [], { error: 'manager exited' }),
  resultsOf('aggregate', [
    { nodes: 1, size: 256 * MiB, egressCapMBps: 25, mbps: summarize([24, 24.5, 23]), efficiency: summarize([0.96, 0.98, 0.92]) },
    { nodes: 8, size: 256 * MiB, egressCapMBps: 25, mbps: summarize([120, 130, 110]), efficiency: summarize([0.6, 0.65, 0.55]) }
  ]),
  resultsOf('origin', [
    { system: 'origin', nodes: 1, mbps: summarize([1000, 1100, 900]) },
    { nodes: 1, mbps: summarize([300, 310, 290]), vsOrigin: 0.3, vsFloor: { proxy: 2.4, node: 3.1 } }
  ]),
  resultsOf('tail', [
    { case: 'clean', seconds: summarize([3, 3, 3]), idealVsClean: 1, vsClean: 1 },
    { case: 'slow', seconds: summarize([3.6, 3.7, 3.5]), idealVsClean: 1.29, vsClean: 1.2 },
    { case: 'stall', seconds: summarize([30, 20, 25]), idealVsClean: 1.33, vsClean: 8.33, cutOffRuns: 1 }
  ])
]

test('a summary gives the median of the runs, their range and their spread', () => {
  assert.is(median([3, 1, 2]), 2)
  assert.is(median([4, 1, 3, 2]), 2.5)
  const s = summarize([10, 12, 8])
  assert.equal({ median: s.median, min: s.min, max: s.max, spread: s.spread, runs: s.runs }, { median: 10, min: 8, max: 12, spread: 0.4, runs: [10, 12, 8] })
  assert.is(ratio(300, 1000), 0.3)
  assert.ok(Number.isNaN(ratio(300, undefined)))
})

test('the promises table says plainly which targets were missed and which were not measured', () => {
  const byClaim = new Map(claims(sample).map(c => [c.claim, c]))
  assert.is(byClaim.get('aggregate efficiency, 1 node × 25 MB/s')?.met, true)
  assert.is(byClaim.get('aggregate efficiency, 8 nodes × 25 MB/s')?.met, false)
  assert.is(byClaim.get('aggregate efficiency, 4 nodes × 25 MB/s')?.met, undefined)
  assert.is(byClaim.get('ours ÷ plain HTTP origin, one uncapped node')?.met, false)
  // CPU per MiB is set against the same work done plainly: met under its multiple, missed above it.
  assert.is(byClaim.get('proxy CPU per MiB ÷ crypto floor (SHA-256 + AES-GCM in one process), one uncapped node')?.met, true)
  assert.is(byClaim.get('node CPU per MiB ÷ plain file server, one uncapped node')?.met, false)
  assert.is(byClaim.get('node CPU per MiB ÷ plain file server, 8 nodes capped at 25 MB/s')?.met, undefined)
  const slow = [...byClaim.values()].find(c => c.claim.startsWith('tail: one node at a tenth'))
  assert.is(slow?.met, true)
  assert.match(slow?.claim ?? '', /ideal 1\.29/)
  // A run cut off at the time limit makes the figure a lower bound.
  const stall = [...byClaim.values()].find(c => c.claim.startsWith('tail: one node frozen'))
  assert.is(stall?.measured, '≥ 8.33×')
  assert.is(stall?.met, false)
  const md = renderMarkdown(sample)
  assert.match(md, /\| aggregate efficiency, 8 nodes × 25 MB\/s \| 0\.6 \| ≥ 0\.95 \| \*\*missed\*\* \|/)
  assert.match(md, /Did not finish:\*\* manager exited/)
  assert.match(md, /median of 3 runs/)
  // Sections follow the order, whatever order the files came in.
  assert.ok(md.indexOf('## aggregate') < md.indexOf('## origin') && md.indexOf('## tail') < md.indexOf('## publish'))
  assert.match(md, /!\[benchmark chart\]\(chart\.svg\)/)
})

test('a measurement table has a column per figure, with the median and the range of the runs', () => {
  const table = measurementTable(sample[1].measurements)
  const [head, , first] = table.split('\n')
  assert.is(head, '| system | nodes / peers | size | cap per node (MB/s) | MB/s | efficiency |')
  assert.is(first, '| ours | 1 | 256.0 MiB | 25 | 24 [23–24.5] | 0.96 [0.92–0.98] |')
})

test('the chart draws one bar per measured case, with the ideal marked, and escapes its text', () => {
  const panels = buildPanels(sample)
  const agg = panels.find(p => p.title.startsWith('Aggregate'))
  assert.equal(agg?.bars.map(b => [b.label, b.value, b.ideal]), [['ours, 1 node', 24, 25], ['ours, 8 nodes', 120, 200]])
  const tail = panels.find(p => p.title.startsWith('Tail'))
  assert.is(tail?.bars[1].ideal, 3 * 1.29)
  assert.not.ok(panels.some(p => p.title.startsWith('Peak resident memory')), 'nothing measured, no panel')
  assert.not.ok(panels.some(p => p.title.startsWith('CPU per MiB')), 'no CPU figures, no CPU panel')
  const withCpu = buildPanels([...sample.filter(r => r.bench !== 'origin'), resultsOf('origin', [
    { nodes: 1, mbps: summarize([300]), cpuMsPerMiB: { proxy: summarize([6, 7, 8]), node: summarize([3]) }, floorMsPerMiB: { crypto: 1.1, fileServer: 0.7 } }
  ])])
  const cpu = withCpu.find(p => p.title.startsWith('CPU per MiB'))
  // Each role's cost stands beside its floor, drawn as the tick.
  assert.equal(cpu?.bars.map(b => [b.value, b.min, b.max, b.ideal]), [[7, 6, 8, 1.1], [3, 3, 3, 0.7]])
  const svg = renderSvg(panels, 'a <b> & c')
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'))
  assert.ok(svg.trimEnd().endsWith('</svg>'))
  assert.match(svg, /a &lt;b&gt; &amp; c/)
  const bars = panels.reduce((n, p) => n + p.bars.length, 0)
  // One <rect> per bar, plus the background and one swatch per system in the legend.
  assert.is((svg.match(/<rect /g) ?? []).length, bars + 1 + 3)
  assert.is(niceMax(180), 200)
  assert.is(niceMax(1100), 2000)
  assert.is(niceMax(0.3), 0.5)
})

test('the report is written from the results files in a folder, skipping other JSON', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-bench-report-'))
  try {
    for (const r of sample) await writeResults(r, dir)
    await writeFile(join(dir, 'sim.json'), JSON.stringify({ summary: { bench: 'sim' } }))
    const out = await writeReport(dir)
    const md = await readFile(out.markdown, 'utf8')
    assert.match(md, /## aggregate/)
    assert.match(md, /## tail/)
    assert.not.match(md, /## sim/)
    assert.ok((await readFile(out.chart, 'utf8')).includes('ours, 8 nodes'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
