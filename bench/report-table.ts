/**
 * The Markdown half of the report: first the figures set against what the
 * design promises (so a miss is said plainly), then every measurement of
 * every benchmark as a table.
 */
import { formatBytes } from '../core/units.ts'
import { figure, find, fmt, isSummary } from './report-data.ts'
import type { Measurement, ResultsFile } from './results.ts'

function cell (key: string, v: unknown): string {
  if (v == null) return '–'
  if (isSummary(v)) return v.runs.length > 1 ? `${fmt(v.median)} [${fmt(v.min)}–${fmt(v.max)}]` : fmt(v.median)
  if (key === 'size' && typeof v === 'number') return formatBytes(v)
  if (typeof v === 'number') return fmt(v)
  if (Array.isArray(v)) return v.length === 0 ? '0' : `${v.length}: ${v.map(x => cell('', x)).join('; ')}`
  if (typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k} ${cell(k, x)}`).join(', ')
  return String(v)
}

const HEADERS: Record<string, string> = {
  system: 'system',
  case: 'case',
  nodes: 'nodes / peers',
  size: 'size',
  egressCapMBps: 'cap per node (MB/s)',
  slowNodeMBps: 'slow node (MB/s)',
  replicas: 'R',
  clients: 'clients',
  mbps: 'MB/s',
  efficiency: 'efficiency',
  seconds: 'seconds',
  headersMs: 'headers (ms)',
  ttfbMs: 'first byte (ms)',
  firstMiBMs: 'first MiB (ms)',
  connectMs: 'connect (ms)',
  oneChunkMs: 'one chunk from a node (ms)',
  vsOrigin: 'ours ÷ origin',
  vsHelia: 'ours ÷ Helia',
  vsClean: '÷ clean',
  idealVsClean: 'ideal ÷ clean',
  managerPeakRssMiB: 'manager peak RSS (MiB)',
  managerIdleRssMiB: 'manager idle RSS (MiB)',
  proxyPeakRssMiB: 'proxy peak RSS (MiB)',
  proxyIdleRssMiB: 'proxy idle RSS (MiB)',
  fetcherPeakRssMiB: 'fetcher peak RSS (MiB)',
  streamedMiB: 'streamed (MiB)',
  curlMbps: 'MB/s with curl',
  cutOffRuns: 'runs cut off at the limit',
  stalledRuns: 'stalled runs (left out)',
  cpuMsPerMiB: 'CPU ms per MiB, by role',
  floorMsPerMiB: 'floor CPU ms per MiB',
  vsFloor: '÷ floor'
}

/** One table of a benchmark's measurements: a column per key that any of them has. */
export function measurementTable (ms: Measurement[]): string {
  const keys: string[] = []
  for (const m of ms) for (const k of Object.keys(m)) if (k !== 'bench' && !keys.includes(k)) keys.push(k)
  const used = keys.filter(k => ms.some(m => m[k] != null))
  const head = `| ${used.map(k => HEADERS[k] ?? k).join(' | ')} |`
  const rule = `| ${used.map(() => '---').join(' | ')} |`
  const rows = ms.map(m => `| ${used.map(k => cell(k, m[k]).replace(/\|/g, '\\|')).join(' | ')} |`)
  return [head, rule, ...rows].join('\n')
}

export interface Claim {
  claim: string
  measured: string
  target: string
  /** undefined: not measured; null: shown for reference, no target */
  met: boolean | null | undefined
}

/** The figures the issue and the design make promises about, each set against its target. */
export function claims (results: ResultsFile[]): Claim[] {
  const out: Claim[] = []
  const add = (claim: string, value: number | undefined, target: string, met: ((v: number) => boolean) | null, unit = '', prefix = ''): void => {
    out.push({ claim, measured: value == null || !Number.isFinite(value) ? 'not measured' : `${prefix}${fmt(value)}${unit}`, target, met: value == null || !Number.isFinite(value) ? undefined : met == null ? null : met(value) })
  }
  for (const n of [1, 2, 4, 8]) {
    const target = n >= 4 ? 0.95 : 0.9
    add(`aggregate efficiency, ${n} node${n > 1 ? 's' : ''} × 25 MB/s`, figure(find(results, 'aggregate', { nodes: n }), 'efficiency'), `≥ ${target}`, v => v >= target)
  }
  for (const n of [4, 8]) {
    add(`aggregate efficiency, ${n} node hosts × 25 MB/s links (network namespaces, kernel-shaped)`, figure(find(results, 'aggregate-hosts', { nodes: n }), 'efficiency'), '≥ 0.9', v => v >= 0.9)
  }
  const origin = find(results, 'origin', { system: 'ours' })
  const vsFloor = origin?.vsFloor as { proxy?: number, node?: number } | undefined
  add('proxy CPU per MiB ÷ crypto floor (SHA-256 + AES-GCM in one process), one uncapped node', vsFloor?.proxy, '≤ 2.5×', v => v <= 2.5, '×')
  add('node CPU per MiB ÷ plain file server, one uncapped node', vsFloor?.node, '≤ 1.5×', v => v <= 1.5, '×')
  for (const n of [4, 8]) {
    const capped = find(results, 'aggregate', { nodes: n })?.vsFloor as { node?: number } | undefined
    add(`node CPU per MiB ÷ plain file server, ${n} nodes capped at 25 MB/s`, capped?.node, '≤ 1.5×', v => v <= 1.5, '×')
  }
  add('ours ÷ plain HTTP origin, one uncapped node', figure(find(results, 'origin', { system: 'ours' }), 'vsOrigin'), '≥ 0.7', v => v >= 0.7)
  for (const n of [1, 3]) {
    const ours = find(results, 'helia', { system: 'ours', nodes: n })
    const vs = ours?.vsHelia as { mbps?: number, ttfb?: number } | undefined
    const target = n >= 3 ? 6 : 1
    add(`ours ÷ Helia throughput, ${n} holder${n > 1 ? 's' : ''}`, vs?.mbps, n >= 3 ? '≥ 6' : '> 1', v => n >= 3 ? v >= target : v > target, '×')
    add(`ours ÷ Helia time to first byte, ${n} holder${n > 1 ? 's' : ''}`, vs?.ttfb, '< 1', v => v < 1, '×')
  }
  const cold = find(results, 'ttfb', { case: 'cold' })
  const chunk = figure(cold, 'oneChunkMs')
  add('cold first byte, in fetches of one chunk straight from a node ("a video starts within one chunk\'s fetch")', chunk == null ? undefined : (figure(cold, 'ttfbMs') ?? NaN) / chunk, '', null, '×')
  add('warm first byte through the proxy', figure(find(results, 'ttfb', { case: 'warm' }), 'ttfbMs'), '< 10 ms', v => v < 10, ' ms')
  add('cold first byte through the proxy', figure(cold, 'ttfbMs'), '< 100 ms', v => v < 100, ' ms')
  for (const c of ['slow', 'stall']) {
    const m = find(results, 'tail', { case: c })
    // A run cut off at the time limit counts as the limit, so the ratio is a lower bound.
    const atLeast = Number(m?.cutOffRuns ?? 0) > 0 ? '≥ ' : ''
    add(`tail: one node ${c === 'slow' ? 'at a tenth of the rate' : 'frozen mid-transfer'}, time ÷ clean (ideal ${fmt(figure(m, 'idealVsClean'))})`, figure(m, 'vsClean'), '≤ 1.25', v => v <= 1.25, '×', atLeast)
  }
  // By order of size rather than by size, so a scaled-down run is reported too.
  const pubs = [...(results.find(r => r.bench === 'publish')?.measurements ?? [])].sort((a, b) => Number(a.size) - Number(b.size))
  add(`publish, ${pubs.length > 0 ? formatBytes(Number(pubs[0].size)) : '1 GiB'} at R=3`, figure(pubs[0], 'mbps'), '≥ 100 MB/s', v => v >= 100, ' MB/s')
  const r1 = figure(pubs[0], 'managerPeakRssMiB')
  const r4 = figure(pubs.at(-1), 'managerPeakRssMiB')
  const sizes = pubs.length > 1 ? `${formatBytes(Number(pubs.at(-1)?.size))} ÷ ${formatBytes(Number(pubs[0]?.size))}` : '4 GiB ÷ 1 GiB'
  add(`manager peak RSS while publishing, ${sizes}`, pubs.length > 1 ? (r4 ?? NaN) / (r1 ?? NaN) : undefined, 'flat: ≤ 1.25', v => v <= 1.25, '×')
  const mem = find(results, 'memory')
  add('proxy peak RSS with 4 × 1 GiB streams', figure(mem, 'proxyPeakRssMiB'), '', null, ' MiB')
  return out
}

/** Sections follow the issue's order of the benchmarks; others go last. */
const ORDER = ['aggregate', 'aggregate-hosts', 'origin', 'helia', 'ttfb', 'tail', 'publish', 'memory']

function rank (bench: string): number {
  const i = ORDER.indexOf(bench)
  return i < 0 ? ORDER.length : i
}

function describeMachine (r: ResultsFile): string {
  const m = r.machine
  return `${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}`
}

export function renderMarkdown (results: ResultsFile[], chartFile = 'chart.svg'): string {
  if (results.length === 0) return '# Benchmark results\n\nNo results yet: run `npm run bench`.\n'
  const dates = results.map(r => r.date.slice(0, 10)).sort()
  const when = dates[0] === dates.at(-1) ? dates[0] : `${dates[0]} to ${dates.at(-1)}`
  const machines = [...new Set(results.map(describeMachine))]
  const runs = [...new Set(results.map(r => String(r.options.runs)))]
  const scales = [...new Set(results.map(r => Number(r.options.scale)))]
  const lines = [
    '# Benchmark results',
    '',
    `Measured ${when} on ${machines.join('; ')}, every role its own process on loopback. ` +
      `Each figure is the median of ${runs.join('/')} runs (fewer where a benchmark says so), with [min–max] after it. MB = 10⁶ bytes.` +
      (scales.some(s => s !== 1) ? ` **Sizes scaled by ${scales.join('/')}** (not the issue's sizes).` : ''),
    `Made by \`npm run bench\`; raw figures in \`bench/results/*.json\`.`,
    '',
    `![benchmark chart](${chartFile})`,
    '',
    '## Against the promises',
    '',
    '| claim | measured | target | |',
    '| --- | --- | --- | --- |',
    ...claims(results).map(c => `| ${c.claim} | ${c.measured} | ${c.target === '' ? '–' : c.target} | ${c.met == null ? '' : c.met ? 'met' : '**missed**'} |`)
  ]
  for (const r of [...results].sort((a, b) => rank(a.bench) - rank(b.bench))) {
    lines.push('', `## ${r.bench}`, '')
    const load = r.load == null ? '' : ` Load average ${fmt(r.load.start)} at the start, ${fmt(r.load.end)} at the end${Math.max(r.load.start, r.load.end) > r.machine.cpus ? ` (**above the ${r.machine.cpus} cores: other work competed, figures are pessimistic**)` : ''}.`
    const cut = Number(r.options.cutRuns ?? 0) > 0 ? ` ${String(r.options.cutRuns)} run(s) left out to keep within its ${String(r.options.budgetSeconds)} s time budget.` : ''
    if (r.about != null) lines.push(`${r.about}. Took ${fmt(r.wallSeconds)} s.${cut}${load}`, '')
    if (r.error != null) lines.push(`**Did not finish:** ${r.error}`, '')
    if (r.measurements.length > 0) lines.push(measurementTable(r.measurements))
  }
  return `${lines.join('\n')}\n`
}
