/**
 * The browser side of the console, as script text: render a state
 * (console-data.ts) into the four tabs, draw the selected content's history
 * with its moves marked, and follow the live stream.
 */
import { WEB_FORMAT_SCRIPT } from '../../core/web-format.ts'

export const CONSOLE_SCRIPT = `${WEB_FORMAT_SCRIPT}
const $ = (id) => document.getElementById(id)
const REASON_COLORS = { mirror: '#2f7ed8', trim: '#e4a11b', migrate: '#a05bd5', repair: '#d9534f', drain: '#8d6e63', 'bad-copy': '#b71c1c', failed: '#555', other: '#999' }
const colorOf = (reason) => REASON_COLORS[reason] || '#999'
let state = JSON.parse($('state').textContent)
let selected = state.selected ? state.selected.id : undefined
let lastEventId = Math.max(0, ...state.events.map((e) => e.id))
let es

function bar (used, cap, text) {
  const pct = cap > 0 ? Math.min(100, 100 * used / cap) : 0
  const level = pct > 90 ? 'hot' : pct > 70 ? 'warm' : ''
  return '<span class="bar ' + level + '"><span style="width:' + pct.toFixed(1) + '%"></span></span> <span class="num">' + text + '</span>'
}
const badge = (h) => '<span class="health h-' + esc(h) + '">' + esc(h) + '</span>'
const when = (iso) => '<span title="' + esc(iso) + '">' + esc(formatAgo(iso, Date.now())) + '</span>'

function renderPool (s) {
  const counts = {}
  for (const n of s.nodes) counts[n.state] = (counts[n.state] || 0) + 1
  $('pool-summary').textContent = s.nodes.length + ' nodes: ' + Object.entries(counts).map(([k, v]) => v + ' ' + k).join(', ')
  $('nodes').innerHTML = s.nodes.map((n) => {
    const fresh = Date.now() - Date.parse(n.joinedAt) < 15000 ? ' fresh' : ''
    const egress = n.egressCap > 0 ? bar(n.egressRate, n.egressCap, formatRate(n.egressRate) + ' of ' + formatRate(n.egressCap)) : '<span class="num">' + formatRate(n.egressRate) + ' (no cap)</span>'
    return '<tr class="node s-' + esc(n.state) + fresh + '" data-peer="' + esc(n.peerId) + '"><td><code title="' + esc(n.peerId) + '">' + esc(shortId(n.peerId)) + '</code><br><span class="muted">' + esc(n.http.replace(/^https?:\\/\\//, '')) + '</span></td>' +
      '<td>' + esc(n.zone || '–') + '</td><td>' + esc(n.state) + '</td><td>' + badge(n.health) + '</td>' +
      '<td>' + bar(n.used, n.capacity, formatBytes(n.used) + ' of ' + formatBytes(n.capacity)) + '</td><td>' + egress + '</td>' +
      '<td class="num">' + n.copies + '</td><td>' + when(n.lastSeen) + '</td></tr>'
  }).join('') || '<tr><td colspan="8" class="muted">no node has joined</td></tr>'
  const moves = s.events.filter((e) => /^node-/.test(e.kind)).slice(0, 12)
  $('node-events').innerHTML = moves.map((e) => '<li class="k-' + esc(e.kind) + '">' + when(e.at) + ' <strong>' + esc(e.kind.replace('node-', '')) + '</strong> <code>' + esc(shortId(e.node || '')) + '</code></li>').join('') || '<li class="muted">none yet</li>'
}

function renderContents (s) {
  $('contents').innerHTML = s.contents.map((c) => '<tr class="content' + (c.id === selected ? ' selected' : '') + '" data-id="' + esc(c.id) + '">' +
    '<td><a href="#contents" data-select="' + esc(c.id) + '">' + esc(c.name) + '</a><br><code class="muted">' + esc(shortId(c.id)) + '</code></td>' +
    '<td class="num">' + formatBytes(c.size) + '</td><td class="num">' + c.chunks + '</td><td class="num">' + c.replicas + '</td>' +
    '<td class="num copies">' + c.copies.min + (c.copies.max !== c.copies.min ? '–' + c.copies.max : '') + '</td><td class="num">' + c.wanted + '</td>' +
    '<td class="num">' + formatRate(c.demand) + '</td></tr>').join('') || '<tr><td colspan="7" class="muted">nothing published yet</td></tr>'
  const sel = s.selected
  $('chart-title').textContent = sel ? (s.contents.find((c) => c.id === sel.id) || { name: sel.id }).name : ''
  if (!sel) { $('chart-box').innerHTML = '<p class="muted">Pick a content to see its demand against its copies over time.</p>'; $('marks').innerHTML = ''; destroyChart(); return }
  drawContentChart(sel)
  $('marks').innerHTML = sel.marks.slice().reverse().slice(0, 30).map((m) => '<li class="mark" data-reason="' + esc(m.reason) + '" data-kind="' + esc(m.kind) + '"><span class="swatch" style="background:' + colorOf(m.reason) + '"></span>' +
    esc(new Date(m.at).toLocaleTimeString()) + ' <strong>' + esc(m.reason) + '</strong> ' + (m.kind === 'copies-added' ? '+' : m.kind === 'copies-removed' ? '−' : '') + m.chunks + ' chunk copies ' + (m.kind === 'copies-removed' ? 'from' : 'on') + ' <code>' + esc(shortId(m.node || '')) + '</code></li>').join('') || '<li class="muted">no moves yet</li>'
}

let chart, chartFor
function destroyChart () { if (chart) { chart.destroy(); chart = undefined; chartFor = undefined } }
function drawContentChart (sel) {
  const box = $('chart-box')
  const ser = sel.series
  if (ser.t.length === 0) { destroyChart(); box.innerHTML = '<p class="muted">No samples yet: the next replication round takes one.</p>'; return }
  const data = [ser.t.map((t) => t / 1000), ser.min, ser.max, ser.wanted, ser.demand]
  chart && (chart.marks = sel.marks)
  if (chart && chartFor === sel.id) { chart.setData(data); return }
  destroyChart()
  box.innerHTML = ''
  chartFor = sel.id
  chart = new uPlot({
    width: Math.max(360, box.clientWidth || 800), height: 260,
    series: [{}, { label: 'copies (min)', stroke: '#3aa876', width: 2, scale: 'copies' }, { label: 'copies (max)', stroke: '#9ad3b4', width: 1, scale: 'copies' },
      { label: 'wanted', stroke: '#555', dash: [6, 4], width: 1, scale: 'copies' },
      { label: 'demand', stroke: '#d9534f', fill: '#d9534f22', width: 1, scale: 'rate', value: (u, v) => v == null ? '' : formatRate(v) }],
    scales: { copies: { range: (u, min, max) => [0, Math.max(max, 4) + 1] }, rate: { range: (u, min, max) => [0, Math.max(max, 1024) * 1.2] } },
    axes: [{}, { scale: 'copies', label: 'copies' }, { scale: 'rate', side: 1, size: 80, grid: { show: false }, values: (u, vals) => vals.map(formatRate) }],
    hooks: { draw: [drawMarks] }
  }, data, box)
  chart.marks = sel.marks
}
function drawMarks (u) {
  const ctx = u.ctx
  ctx.save()
  ctx.font = (11 * devicePixelRatio) + 'px system-ui'
  const labelled = {}
  for (const m of u.marks || []) {
    const x = u.valToPos(m.at / 1000, 'x', true)
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue
    // Moves of one round land together: one label per reason and place, one line each.
    const crowded = labelled[m.reason] != null && x - labelled[m.reason] < 60 * devicePixelRatio
    if (!crowded) labelled[m.reason] = x
    ctx.strokeStyle = ctx.fillStyle = colorOf(m.reason)
    ctx.lineWidth = devicePixelRatio
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke()
    if (!crowded) ctx.fillText(m.reason, x + 3, u.bbox.top + 12 * devicePixelRatio)
  }
  ctx.restore()
}

function renderHealth (s) {
  const h = s.health
  const r = h.lastRound || {}
  const last = h.rounds[h.rounds.length - 1]
  $('health-cards').innerHTML = [
    ['chunks below ' + h.minCopies + ' copies', h.belowMin, h.belowMin > 0 ? 'bad' : 'good'],
    ['chunks under their R', h.belowBase, h.belowBase > 0 ? 'warn' : 'good'],
    ['fewest copies of a chunk', h.lowest == null ? '–' : h.lowest, ''],
    ['copies deferred last round', r.deferred == null ? '–' : r.deferred, r.deferred > 0 ? 'warn' : ''],
    ['moves under way', h.pendingActions, '']
  ].map(([k, v, cls]) => '<div class="card ' + cls + '"><div class="big">' + esc(v) + '</div>' + esc(k) + '</div>').join('')
  $('budget').innerHTML = last ? bar(last.planned, last.budget, formatBytes(last.planned) + ' planned of ' + formatBytes(last.budget) + ' allowed in the last round') : '<span class="muted">no round yet</span>'
  $('blocked').innerHTML = h.repairBlocked.map((b) => '<li><strong>' + esc(b.reason) + '</strong>: ' + esc(b.message) + '</li>').join('') || '<li class="muted">nothing blocks repair</li>'
}

function eventRow (e) {
  const fresh = e.id > lastEventId ? ' fresh' : ''
  const d = e.detail ? Object.entries(e.detail).map(([k, v]) => k + '=' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(' ') : ''
  return '<tr class="event' + fresh + '" data-kind="' + esc(e.kind) + '"><td>' + esc(new Date(e.at).toLocaleTimeString()) + '</td><td>' + esc(e.kind) + '</td><td><code title="' + esc(e.content || '') + '">' + esc(e.content ? shortId(e.content) : '') + '</code></td>' +
    '<td><code title="' + esc(e.node || '') + '">' + esc(e.node ? shortId(e.node) : '') + '</code></td><td class="detail">' + esc(d) + '</td></tr>'
}
function renderEvents (s) {
  const kinds = [...new Set(s.events.map((e) => e.kind))].sort()
  const pick = $('f-kind')
  const keep = pick.value
  pick.innerHTML = '<option value="">every kind</option>' + kinds.map((k) => '<option' + (k === keep ? ' selected' : '') + '>' + esc(k) + '</option>').join('')
  const node = $('f-node').value.trim()
  const content = $('f-content').value.trim()
  const shown = s.events.filter((e) => (!keep || e.kind === keep) && (!node || (e.node || '').includes(node.replace('…', ''))) && (!content || (e.content || '').includes(content.replace('…', ''))))
  $('events').innerHTML = shown.map(eventRow).join('') || '<tr><td colspan="5" class="muted">no event matches</td></tr>'
  lastEventId = Math.max(lastEventId, ...s.events.map((e) => e.id))
}

function render (s) {
  state = s
  renderPool(s)
  renderContents(s)
  renderHealth(s)
  renderEvents(s)
  $('updated').textContent = new Date(s.at).toLocaleTimeString()
}

function connect () {
  if (es) es.close()
  es = new EventSource('/ui/api/stream' + (selected ? '?content=' + encodeURIComponent(selected) : ''))
  es.onmessage = (e) => { $('offline').hidden = true; render(JSON.parse(e.data)) }
  es.onerror = () => { $('offline').hidden = false }
}

function showTab () {
  const tab = (location.hash || '#pool').slice(1)
  for (const t of document.querySelectorAll('section.tab')) t.hidden = t.id !== 'tab-' + tab
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.getAttribute('href') === '#' + tab)
}
window.addEventListener('hashchange', showTab)
document.addEventListener('click', (e) => {
  const a = e.target.closest('[data-select]')
  if (!a) return
  selected = a.dataset.select
  history.replaceState(null, '', '?content=' + encodeURIComponent(selected) + '#contents')
  destroyChart()
  connect()
})
for (const id of ['f-kind', 'f-node', 'f-content']) $(id).addEventListener('input', () => renderEvents(state))
window.addEventListener('resize', () => { if (chart) chart.setSize({ width: Math.max(360, $('chart-box').clientWidth), height: 260 }) })
showTab()
render(state)
connect()
`
