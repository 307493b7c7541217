/**
 * The proxy's pages: a live dashboard and a player for one content. Each
 * carries its first snapshot (so it shows the state at once), then follows
 * `/api/dashboard/events`. Plain HTML, a little script and uPlot, served by
 * the proxy itself: nothing to build, nothing fetched from elsewhere.
 */
import { CHART_SCRIPT, CHART_STYLE } from '../../core/web-assets.ts'
import { embedJson, esc, formatBytes } from '../../core/web-format.ts'
import { DASHBOARD_SCRIPT, PLAYER_SCRIPT, STRIP_LEGEND } from './dashboard-script.ts'
import type { DashboardSnapshot } from './dashboard-snapshot.ts'

const STYLE = `
body{font:14px system-ui,sans-serif;margin:2em;color:#222;background:#fafafa;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;font-variant-numeric:tabular-nums;vertical-align:top}
th small{color:#888;font-weight:normal}
code{font-size:12px}.bar{background:#eee;height:8px;width:120px;display:inline-block}
.bar>span{background:#3a7;height:8px;display:block}.muted{color:#888}
form input{width:32em}.panel{background:#fff;padding:8px;border:1px solid #eee}
.health{padding:1px 6px;border-radius:8px;font-size:12px}.health.fast{background:#d7f2e1;color:#17643a}
.health.slow{background:#fdf0cf;color:#7a5a00}.health.failing{background:#fadbd8;color:#922}.health.unused{background:#eee;color:#666}
.cells{display:flex;flex-wrap:wrap;gap:1px}.cell{display:inline-block;width:9px;height:14px;background:#ddd}
.mr{background:#f0c419}.mh{background:#f08c00}.me{background:#e8a0a0}.mx{background:#d9534f}
.mf{background:#3aa876}.mH{background:#7b4fd6}.mX{background:#8b1e1e}.mc{background:#2f7ed8}
.legend .cell{vertical-align:middle}.legend{font-size:12px;color:#555;margin-top:6px}
video{max-width:100%;background:#000}`

function head (title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${esc(title)}</title>
<link rel="stylesheet" href="/assets/${CHART_STYLE}"><style>${STYLE}</style>
<script src="/assets/${CHART_SCRIPT}"></script></head>`
}

export function dashboardPage (snapshot: DashboardSnapshot): string {
  return `${head('cdn proxy')}
<body>
<h1>cdn proxy</h1>
<form id="open"><input id="cid" placeholder="content id or cdn:// link" aria-label="content id"> <button>Play</button></form>
<h2>Download speed <small class="muted">last minutes, per source · updated <span id="updated"></span></small></h2>
<div id="speed" class="panel"></div>
<h2>Chunks of the current download</h2>
<div id="strip" class="panel"></div>
<div class="legend">${STRIP_LEGEND}</div>
<h2>Downloads</h2>
<table><thead><tr><th>#</th><th>content</th><th>progress <small>bytes</small></th><th>speed <small>per second</small></th><th>sources <small>bytes received</small></th><th>state</th></tr></thead><tbody id="downloads"></tbody></table>
<h2>Sources</h2>
<table><thead><tr><th>source <small>peer id · address</small></th><th>health</th><th>RTT <small>ms</small></th><th>throughput <small>per second</small></th><th>in flight <small>requests</small></th><th>received <small>bytes</small></th></tr></thead><tbody id="sources"></tbody></table>
<h2>Cache</h2><p id="cache" class="muted">…</p>
<script type="application/json" id="snapshot">${embedJson(snapshot)}</script>
<script>
${DASHBOARD_SCRIPT}</script>
</body></html>`
}

export interface PlayerInfo {
  name?: string
  size?: number
  type?: string
  /** why name and size are missing (the content could not be resolved yet) */
  problem?: string
}

/** The player for one content; `access` (a key link's key, a capability) goes on to the media URL, or the video could not be opened. */
export function playerPage (id: string, access: { k?: string, cap?: string }, info: PlayerInfo, snapshot: DashboardSnapshot): string {
  const query = new URLSearchParams()
  if (access.k != null) query.set('k', access.k)
  if (access.cap != null) query.set('cap', access.cap)
  const q = query.toString()
  const safeId = id.replace(/[^a-z0-9]/gi, '')
  const src = `/c/${encodeURIComponent(id)}${q === '' ? '' : `?${q.replace(/&/g, '&amp;')}`}`
  const what = info.name != null
    ? `<strong>${esc(info.name)}</strong> · ${formatBytes(info.size ?? 0)}${info.type != null ? ` · ${esc(info.type)}` : ''}`
    : `<span class="muted">name and size unknown: ${esc(info.problem ?? 'not resolved')}</span>`
  return `${head(info.name != null ? `${info.name} · cdn player` : 'cdn player')}
<body>
<p><a href="/">← dashboard</a> · <code>${safeId}</code> · <a href="${src}" download>download</a></p>
<video id="player" src="${src}" data-content="${safeId}" controls autoplay muted playsinline preload="auto"></video>
<p id="what">${what}</p>
<p>Now: <span id="live">…</span></p>
<h2>Sources of this content</h2><ul id="sources"></ul>
<h2>Download speed</h2><div id="speed" class="panel"></div>
<h2>Chunks of the latest read</h2><div id="strip" class="panel"></div>
<div class="legend">${STRIP_LEGEND}</div>
<script type="application/json" id="snapshot">${embedJson(snapshot)}</script>
<script>
${PLAYER_SCRIPT}</script>
</body></html>`
}
