/**
 * The picture half of the report: a hand-written SVG of horizontal bars, one
 * panel per question (throughput, against the peers, first byte, tail,
 * memory). A bar is a median; its whisker spans the runs' min to max; a
 * dashed tick marks what a perfect system would reach.
 */
import { formatBytes } from '../core/units.ts'
import type { Measurement, ResultsFile, System } from './results.ts'
import { figure, find, fmt, isSummary } from './report-data.ts'

export interface Bar {
  label: string
  system: System
  value: number
  min?: number
  max?: number
  /** the ideal value, drawn as a dashed tick */
  ideal?: number
}

export interface Panel {
  title: string
  unit: string
  bars: Bar[]
}

const COLORS: Record<System, string> = { ours: '#2563eb', helia: '#e8890c', origin: '#6b7280' }

function bar (label: string, system: System, m: Measurement | undefined, key: string, ideal?: number): Bar | undefined {
  const v = m?.[key]
  if (isSummary(v)) return { label, system, value: v.median, min: v.min, max: v.max, ideal }
  const n = figure(m, key)
  return n == null ? undefined : { label, system, value: n, ideal }
}

/** A bar from a figure one level down, e.g. `cpuMsPerMiB.proxy`. */
function nestedBar (label: string, system: System, m: Measurement | undefined, key: string, sub: string, ideal?: number): Bar | undefined {
  const inner = m?.[key] as Measurement | undefined
  return inner == null || typeof inner !== 'object' ? undefined : bar(label, system, inner, sub, ideal)
}

function panel (title: string, unit: string, bars: Array<Bar | undefined>): Panel | undefined {
  const present = bars.filter((b): b is Bar => b != null)
  return present.length === 0 ? undefined : { title, unit, bars: present }
}

/** CPU per MiB of each role beside its floor (tick): the figure to steer by on a shared machine. */
function cpuPanel (results: ResultsFile[]): Panel | undefined {
  const origin = find(results, 'origin', { system: 'ours' })
  const floors = origin?.floorMsPerMiB as { crypto?: number, fileServer?: number } | undefined
  const pubs = [...(results.find(r => r.bench === 'publish')?.measurements ?? [])].sort((a, b) => Number(a.size) - Number(b.size))
  return panel('CPU per MiB by role (tick: the same work done plainly in one process)', 'ms/MiB', [
    nestedBar('proxy, 1 uncapped node (floor: SHA-256 + AES-GCM)', 'ours', origin, 'cpuMsPerMiB', 'proxy', floors?.crypto),
    nestedBar('node, uncapped (floor: plain file server)', 'ours', origin, 'cpuMsPerMiB', 'node', floors?.fileServer),
    ...[4, 8].map(n => {
      const m = find(results, 'aggregate', { nodes: n })
      const f = m?.floorMsPerMiB as { fileServer?: number } | undefined
      return nestedBar(`nodes, ${n} × 25 MB/s (per MiB delivered)`, 'ours', m, 'cpuMsPerMiB', 'node', f?.fileServer)
    }),
    ...pubs.map(m => nestedBar(`manager, publishing ${formatBytes(Number(m.size))}`, 'ours', m, 'cpuMsPerMiB', 'manager')),
    ...pubs.slice(0, 1).map(m => nestedBar(`nodes, storing ${formatBytes(Number(m.size))} × R=${String(m.replicas)}`, 'ours', m, 'cpuMsPerMiB', 'nodes'))
  ])
}

/** The panels that the results hold data for, in reading order. */
export function buildPanels (results: ResultsFile[]): Panel[] {
  const agg = results.find(r => r.bench === 'aggregate')?.measurements ?? []
  const tailClean = figure(find(results, 'tail', { case: 'clean' }), 'seconds')
  const pubs = [...(results.find(r => r.bench === 'publish')?.measurements ?? [])].sort((a, b) => Number(a.size) - Number(b.size))
  const mem = find(results, 'memory')
  const heliaOne = find(results, 'helia', { system: 'helia', nodes: 1 })
  const panels = [
    panel('Aggregate throughput through the proxy: N nodes capped at 25 MB/s (tick: N × 25)', 'MB/s',
      agg.map(m => bar(`ours, ${String(m.nodes)} node${m.nodes === 1 ? '' : 's'}`, 'ours', m, 'mbps', Number(m.nodes) * Number(m.egressCapMBps)))),
    panel('Throughput against the peers, 256 MiB, uncapped', 'MB/s', [
      bar('plain HTTP origin (node:http)', 'origin', find(results, 'origin', { system: 'origin' }), 'mbps'),
      bar('ours, 1 node', 'ours', find(results, 'origin', { system: 'ours' }), 'mbps'),
      bar('Helia, 1 provider', 'helia', find(results, 'helia', { system: 'helia', nodes: 1 }), 'mbps'),
      bar('ours, 1 node (helia run)', 'ours', find(results, 'helia', { system: 'ours', nodes: 1 }), 'mbps'),
      bar('Helia, 3 providers', 'helia', find(results, 'helia', { system: 'helia', nodes: 3 }), 'mbps'),
      bar('ours, 3 nodes', 'ours', find(results, 'helia', { system: 'ours', nodes: 3 }), 'mbps')
    ]),
    panel('Time to first byte of a content never fetched before', 'ms', [
      bar('Helia, 1 provider (connected)', 'helia', find(results, 'helia', { system: 'helia', nodes: 1 }), 'ttfbMs'),
      bar('ours, 1 node', 'ours', find(results, 'helia', { system: 'ours', nodes: 1 }), 'ttfbMs'),
      bar('Helia, 3 providers (connected)', 'helia', find(results, 'helia', { system: 'helia', nodes: 3 }), 'ttfbMs'),
      bar('ours, 3 nodes', 'ours', find(results, 'helia', { system: 'ours', nodes: 3 }), 'ttfbMs'),
      bar('ours, 4 nodes, cold', 'ours', find(results, 'ttfb', { case: 'cold' }), 'ttfbMs'),
      bar('ours, 4 nodes, warm', 'ours', find(results, 'ttfb', { case: 'warm' }), 'ttfbMs'),
      bar('ours, 4 nodes, cold, first MiB', 'ours', find(results, 'ttfb', { case: 'cold' }), 'firstMiBMs'),
      bar('plain HTTP origin', 'origin', find(results, 'origin', { system: 'origin' }), 'ttfbMs')
    ]),
    panel('Tail: 256 MiB from 4 nodes at 25 MB/s (tick: best possible with the capacity left)', 's', ['clean', 'slow', 'stall'].map((c) => {
      const m = find(results, 'tail', { case: c })
      const label = c === 'clean' ? 'none slowed' : c === 'slow' ? 'one node at 2.5 MB/s' : 'one node frozen at 25 %'
      const ideal = tailClean == null ? undefined : tailClean * (figure(m, 'idealVsClean') ?? 1)
      return bar(label, 'ours', m, 'seconds', ideal)
    })),
    cpuPanel(results),
    panel('Peak resident memory', 'MiB', [
      ...pubs.map(m => bar(`manager, publishing ${formatBytes(Number(m.size))} (R=${String(m.replicas)})`, 'ours', m, 'managerPeakRssMiB')),
      bar(`proxy, ${String(mem?.clients ?? 4)} clients × ${formatBytes(Number(mem?.size ?? 0))}`, 'ours', mem, 'proxyPeakRssMiB'),
      bar(`Helia fetcher, ${formatBytes(Number(heliaOne?.size ?? 0))}`, 'helia', heliaOne, 'fetcherPeakRssMiB')
    ])
  ]
  return panels.filter((p): p is Panel => p != null)
}

export function escapeXml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A round axis end at or above `v`: 1, 2 or 5 times a power of ten. */
export function niceMax (v: number): number {
  if (!(v > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

const WIDTH = 960
const LABEL_W = 300
const VALUE_W = 90
const ROW_H = 24
const TITLE_H = 30
const GAP = 18

export function renderSvg (panels: Panel[], subtitle: string): string {
  const plotW = WIDTH - LABEL_W - VALUE_W - 20
  const out: string[] = []
  let y = 56
  for (const p of panels) {
    const max = niceMax(Math.max(...p.bars.map(b => Math.max(b.value, b.max ?? 0, b.ideal ?? 0))))
    const x = (v: number): number => LABEL_W + (v / max) * plotW
    out.push(`<text x="10" y="${y + 18}" class="title">${escapeXml(p.title)}</text>`)
    y += TITLE_H
    // Grid at quarters of the axis, labelled, so bars can be read without the numbers.
    for (let i = 0; i <= 4; i++) {
      const gx = x(max * i / 4)
      out.push(`<line x1="${gx.toFixed(1)}" y1="${y - 4}" x2="${gx.toFixed(1)}" y2="${y + p.bars.length * ROW_H}" class="grid"/>`)
      out.push(`<text x="${gx.toFixed(1)}" y="${y + p.bars.length * ROW_H + 12}" class="axis">${fmt(max * i / 4)}${i === 4 ? ` ${escapeXml(p.unit)}` : ''}</text>`)
    }
    for (const b of p.bars) {
      const mid = y + ROW_H / 2
      out.push(`<text x="${LABEL_W - 8}" y="${mid + 4}" class="label">${escapeXml(b.label)}</text>`)
      out.push(`<rect x="${LABEL_W}" y="${y + 4}" width="${Math.max(1, x(b.value) - LABEL_W).toFixed(1)}" height="${ROW_H - 8}" fill="${COLORS[b.system]}"><title>${escapeXml(`${b.label}: ${fmt(b.value)} ${p.unit}`)}</title></rect>`)
      if (b.min != null && b.max != null && b.max > b.min) {
        out.push(`<line x1="${x(b.min).toFixed(1)}" y1="${mid}" x2="${x(b.max).toFixed(1)}" y2="${mid}" class="whisker"/>`)
        out.push(`<line x1="${x(b.min).toFixed(1)}" y1="${mid - 4}" x2="${x(b.min).toFixed(1)}" y2="${mid + 4}" class="whisker"/>`)
        out.push(`<line x1="${x(b.max).toFixed(1)}" y1="${mid - 4}" x2="${x(b.max).toFixed(1)}" y2="${mid + 4}" class="whisker"/>`)
      }
      if (b.ideal != null) out.push(`<line x1="${x(b.ideal).toFixed(1)}" y1="${y + 1}" x2="${x(b.ideal).toFixed(1)}" y2="${y + ROW_H - 1}" class="ideal"/>`)
      const right = Math.max(x(b.value), x(b.max ?? 0))
      out.push(`<text x="${(right + 6).toFixed(1)}" y="${mid + 4}" class="value">${fmt(b.value)}</text>`)
      y += ROW_H
    }
    y += GAP + 14
  }
  const legendY = y
  const legend = (Object.entries(COLORS) as Array<[System, string]>).map(([system, color], i) =>
    `<rect x="${10 + i * 110}" y="${legendY}" width="12" height="12" fill="${color}"/><text x="${26 + i * 110}" y="${legendY + 11}" class="legend">${system}</text>`)
  legend.push(`<line x1="350" y1="${legendY}" x2="350" y2="${legendY + 12}" class="ideal"/><text x="358" y="${legendY + 11}" class="legend">ideal</text>`)
  legend.push(`<line x1="420" y1="${legendY + 6}" x2="450" y2="${legendY + 6}" class="whisker"/><text x="458" y="${legendY + 11}" class="legend">min–max of the runs</text>`)
  const height = legendY + 30
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold;fill:#111}.label{font-size:12px;text-anchor:end;fill:#222}.value{font-size:12px;fill:#111}' +
      '.axis{font-size:10px;text-anchor:middle;fill:#666}.legend{font-size:12px;fill:#222}.grid{stroke:#e5e7eb;stroke-width:1}' +
      '.whisker{stroke:#111;stroke-width:1.2}.ideal{stroke:#111;stroke-width:2;stroke-dasharray:3 2}.head{font-size:18px;font-weight:bold;fill:#111}.sub{font-size:12px;fill:#444}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    '<text x="10" y="24" class="head">cdn benchmarks</text>',
    `<text x="10" y="42" class="sub">${escapeXml(subtitle)}</text>`,
    ...out,
    ...legend,
    '</svg>'
  ].join('\n') + '\n'
}
