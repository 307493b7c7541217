/**
 * Turns `bench/results/*.json` into `bench/results/REPORT.md` (the tables)
 * and `bench/results/chart.svg` (the picture the README shows).
 *
 *   node bench/report.ts [--dir bench/results]
 *
 * `bench/run.ts` calls it at the end of every run.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildPanels, renderSvg } from './report-chart.ts'
import { renderMarkdown } from './report-table.ts'
import { readResults, RESULTS_DIR, type ResultsFile } from './results.ts'

function subtitle (results: ResultsFile[]): string {
  const first = results[0]
  if (first == null) return 'no results yet'
  const dates = results.map(r => r.date.slice(0, 10)).sort()
  const m = first.machine
  return `${dates[0] === dates.at(-1) ? dates[0] : `${dates[0]} – ${dates.at(-1)}`} · ${m.cpus} cores, ${m.memoryGiB} GiB, Node ${m.node} · every role its own process on loopback · medians of up to ${String(first.options.runs)} runs`
}

export async function writeReport (dir = RESULTS_DIR): Promise<{ markdown: string, chart: string }> {
  const results = await readResults(dir)
  const markdown = join(dir, 'REPORT.md')
  const chart = join(dir, 'chart.svg')
  await writeFile(chart, renderSvg(buildPanels(results), subtitle(results)))
  await writeFile(markdown, renderMarkdown(results, 'chart.svg'))
  return { markdown, chart }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { dir: { type: 'string', default: RESULTS_DIR } } })
  const out = await writeReport(values.dir)
  process.stdout.write(`${out.markdown}\n${out.chart}\n`)
}
