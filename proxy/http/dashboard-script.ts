/**
 * The browser side of the proxy's pages, as script text: render a snapshot
 * (dashboard-snapshot.ts) into the page, draw the speed chart with uPlot and
 * the chunk strip, and redraw on every server-sent event.
 */
import { WEB_FORMAT_SCRIPT } from '../../core/web-format.ts'
import { CHUNK_MARKS } from './chunk-strip.ts'

/** Shared by the dashboard and the player: formatting, health badges, the speed chart. */
const COMMON = `${WEB_FORMAT_SCRIPT}
const $ = (id) => document.getElementById(id)
const PALETTE = ['#2f7ed8', '#e4a11b', '#3aa876', '#a05bd5', '#d9534f', '#5bc0de', '#8d6e63']
const badge = (s) => '<span class="health ' + esc(s.health) + '" title="delay charged for recent failures: ' + Math.round(s.penalty) + ' ms">' + esc(s.health) + '</span>'
const sourceLabel = (s, names) => s === 'cache' ? 'cache' : s === 'others' ? 'others' : (names.get(s) || shortId(s))
let chart, chartKey = ''
function speedChart (box, speed, names) {
  box.dataset.peak = String(Math.max(0, ...speed.total))
  if (speed.t.length === 0) {
    if (chart) { chart.destroy(); chart = undefined; chartKey = '' }
    box.innerHTML = '<p class="muted">No download in the last minutes.</p>'
    return
  }
  // Stacked: each band is the sum of the sources up to it, drawn widest first so narrower ones paint over it.
  const lanes = speed.sources
  const sums = []
  let acc = speed.t.map(() => 0)
  for (const l of lanes) { acc = acc.map((v, i) => v + l.rates[i]); sums.push(acc) }
  const key = lanes.map((l) => l.source).join(',')
  const data = [speed.t, speed.total, ...sums.slice().reverse()]
  if (chart && key === chartKey) { chart.setData(data); return }
  if (chart) chart.destroy()
  box.innerHTML = ''
  chartKey = key
  const bands = lanes.map((l, i) => ({ label: sourceLabel(l.source, names), stroke: PALETTE[i % PALETTE.length], fill: PALETTE[i % PALETTE.length] + 'cc', width: 1, points: { show: false }, value: (u, v, si, di) => di == null ? '' : formatRate(lanes[i].rates[di]) })).reverse()
  chart = new uPlot({
    width: Math.max(320, box.clientWidth || 640), height: 220,
    series: [{}, { label: 'total', stroke: '#222', width: 2, points: { show: false }, value: (u, v) => v == null ? '' : formatRate(v) }, ...bands],
    axes: [{}, { size: 80, values: (u, vals) => vals.map(formatRate) }],
    scales: { y: { range: (u, min, max) => [0, Math.max(max, 1024) * 1.1] } },
    cursor: { drag: { x: false, y: false } }
  }, data, box)
}
window.addEventListener('resize', () => { if (chart) chart.setSize({ width: Math.max(320, $('speed').clientWidth), height: 220 }) })
`

export const STRIP_LEGEND = Object.entries(CHUNK_MARKS)
  .map(([mark, words]) => `<span class="cell m${mark === '.' ? 'w' : mark === '!' ? 'e' : mark}"></span> ${words}`)
  .join(' &nbsp; ')

const STRIP = `
const markClass = (m) => 'm' + (m === '.' ? 'w' : m === '!' ? 'e' : m)
function strip (box, d) {
  if (!d) { box.innerHTML = '<p class="muted">No download yet.</p>'; return }
  const c = d.chunks
  const head = '<p>#' + d.n + ' ' + esc(d.name || shortId(d.id)) + ' — ' + esc(d.state) + ', ' + formatBytes(d.done) + ' of ' + formatBytes(d.total) + '</p>'
  if (!c) { box.innerHTML = head + '<p class="muted">Too many chunks to draw.</p>'; return }
  let cells = ''
  for (let i = 0; i < c.marks.length; i++) cells += '<span class="cell ' + markClass(c.marks[i]) + '" title="chunk ' + (c.first + i) + '"></span>'
  box.innerHTML = head + '<div class="cells" data-download="' + d.n + '">' + cells + '</div>'
}
`

export const DASHBOARD_SCRIPT = `${COMMON}${STRIP}
function row (d) {
  const srcs = Object.entries(d.sources).map(([s, b]) => esc(s === 'cache' ? 'cache' : shortId(s)) + ' ' + formatBytes(b)).join('<br>')
  const pct = formatShare(d.done, d.total)
  return '<tr><td>' + d.n + '</td><td><a href="/play/' + esc(d.id) + '">' + esc(d.name || shortId(d.id)) + '</a></td>' +
    '<td><span class="bar"><span style="width:' + pct + '"></span></span> ' + formatBytes(d.done) + ' of ' + formatBytes(d.total) + ' (' + pct + ')</td>' +
    '<td>' + formatRate(d.bytesPerSecond) + '</td><td>' + (srcs || '–') + '</td><td>' + esc(d.state) + (d.error ? ': ' + esc(d.error) : '') + '</td></tr>'
}
function render (s) {
  const names = new Map(s.sources.map((x) => [x.source, x.name]))
  speedChart($('speed'), s.speed, names)
  const all = [...s.downloads.active, ...s.downloads.recent.slice(0, 8)]
  // The longest-running download: short ones come and go too fast to read.
  strip($('strip'), s.downloads.active[0] || s.downloads.recent[0])
  $('downloads').innerHTML = all.map(row).join('') || '<tr><td colspan="6" class="muted">none yet</td></tr>'
  $('sources').innerHTML = s.sources.map((x) => '<tr><td><code>' + esc(x.name) + '</code> <span class="muted">' + esc(x.address) + '</span></td><td>' + badge(x) + '</td><td>' +
    x.rttMs.toFixed(1) + ' ms</td><td>' + formatRate(x.bytesPerSecond) + '</td><td>' + x.inFlight + '</td><td>' + formatBytes(x.bytes) + '</td></tr>').join('') || '<tr><td colspan="6" class="muted">none yet</td></tr>'
  const c = s.cache
  $('cache').textContent = c ? formatBytes(c.bytes) + ' of ' + formatBytes(c.maxBytes) + ' in ' + c.entries + ' chunks; ' + c.hits + ' hits, ' + c.misses + ' misses' : 'disabled'
  $('updated').textContent = new Date(s.at).toLocaleTimeString()
}
render(JSON.parse($('snapshot').textContent))
new EventSource('/api/dashboard/events').onmessage = (e) => render(JSON.parse(e.data))
$('open').onsubmit = (e) => {
  e.preventDefault()
  const v = $('cid').value.trim()
  const m = /^cdn:\\/\\/([^?]+)(?:\\?(k|cap)=(.+))?$/.exec(v)
  location.href = m ? '/play/' + encodeURIComponent(m[1]) + (m[3] ? '?' + m[2] + '=' + encodeURIComponent(m[3]) : '') : '/play/' + encodeURIComponent(v)
}
`

/** The player's live line: the newest download of its content, its speed and its sources. */
export const PLAYER_SCRIPT = `${COMMON}${STRIP}
const ID = $('player').dataset.content
function render (s) {
  const mine = [...s.downloads.active.slice().reverse(), ...s.downloads.recent].filter((d) => d.id === ID)
  const d = mine[0]
  const active = s.downloads.active.filter((x) => x.id === ID)
  const rate = active.reduce((n, x) => n + x.bytesPerSecond, 0)
  $('live').textContent = d ? (active.length > 0 ? 'loading at ' + formatRate(rate) : 'idle (last read at ' + formatRate(d.bytesPerSecond) + ')') : 'not loaded yet'
  const by = new Map(s.sources.map((x) => [x.source, x]))
  const used = new Map()
  for (const x of mine) for (const [src, b] of Object.entries(x.sources)) used.set(src, (used.get(src) || 0) + b)
  $('sources').innerHTML = [...used].sort((a, b) => b[1] - a[1]).map(([src, b]) => {
    const x = by.get(src)
    return '<li><code>' + esc(src === 'cache' ? 'cache' : shortId(src)) + '</code> ' + formatBytes(b) + (x ? ' · ' + badge(x) + ' · ' + formatRate(x.bytesPerSecond) : '') + '</li>'
  }).join('') || '<li class="muted">none yet</li>'
  const names = new Map(s.sources.map((x) => [x.source, x.name]))
  speedChart($('speed'), s.speed, names)
  strip($('strip'), d)
}
render(JSON.parse($('snapshot').textContent))
new EventSource('/api/dashboard/events').onmessage = (e) => render(JSON.parse(e.data))
`
