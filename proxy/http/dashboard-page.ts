/**
 * The proxy's pages: a live dashboard (fed by server-sent events from
 * `/api/dashboard/events`) and a player page for one content. Plain HTML and
 * a little script: nothing to build, nothing fetched from elsewhere.
 */

const STYLE = `
body{font:14px system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;font-variant-numeric:tabular-nums}
code{font-size:12px}.bar{background:#eee;height:8px;width:160px;display:inline-block}
.bar>span{background:#3a7;height:8px;display:block}.muted{color:#888}
form input{width:32em}`

export function dashboardPage (): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cdn proxy</title><style>${STYLE}</style></head>
<body>
<h1>cdn proxy</h1>
<form id="open"><input id="cid" placeholder="content id or cdn:// link" aria-label="content id"> <button>Play</button></form>
<h2>Downloads</h2>
<table><thead><tr><th>#</th><th>content</th><th>progress</th><th>speed</th><th>sources (bytes)</th><th>state</th></tr></thead><tbody id="downloads"></tbody></table>
<h2>Sources</h2>
<table><thead><tr><th>source</th><th>RTT</th><th>throughput</th><th>penalty</th><th>in flight</th><th>bytes</th></tr></thead><tbody id="sources"></tbody></table>
<h2>Cache</h2><p id="cache" class="muted">…</p>
<script>
const mb = (n) => (n / 1048576).toFixed(1) + ' MiB'
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])
function row (d) {
  const pct = d.total > 0 ? Math.round(100 * d.done / d.total) : 100
  const srcs = Object.entries(d.sources).map(([s, b]) => esc(s) + ': ' + mb(b)).join('<br>')
  return '<tr><td>' + d.n + '</td><td><a href="/play/' + esc(d.id) + '">' + esc(d.name || d.id.slice(0, 16) + '…') + '</a></td>' +
    '<td><span class="bar"><span style="width:' + pct + '%"></span></span> ' + pct + '% of ' + mb(d.total) + '</td>' +
    '<td>' + mb(d.bytesPerSecond) + '/s</td><td>' + srcs + '</td><td>' + esc(d.state) + (d.error ? ': ' + esc(d.error) : '') + '</td></tr>'
}
function render (s) {
  document.getElementById('downloads').innerHTML = [...s.downloads.active, ...s.downloads.recent].map(row).join('') || '<tr><td colspan="6" class="muted">none yet</td></tr>'
  document.getElementById('sources').innerHTML = s.sources.map((x) => '<tr><td>' + esc(x.source) + '</td><td>' + x.rttMs.toFixed(1) + ' ms</td><td>' + mb(x.bytesPerSecond) + '/s</td><td>' + x.penalty.toFixed(2) + '</td><td>' + x.inFlight + '</td><td>' + mb(x.bytes) + '</td></tr>').join('') || '<tr><td colspan="6" class="muted">none yet</td></tr>'
  const c = s.cache
  document.getElementById('cache').textContent = c ? mb(c.bytes) + ' of ' + mb(c.maxBytes) + ' in ' + c.entries + ' chunks; ' + c.hits + ' hits, ' + c.misses + ' misses' : 'disabled'
}
new EventSource('/api/dashboard/events').onmessage = (e) => render(JSON.parse(e.data))
document.getElementById('open').onsubmit = (e) => {
  e.preventDefault()
  const v = document.getElementById('cid').value.trim()
  const m = /^cdn:\\/\\/([^?]+)(?:\\?(k|cap)=(.+))?$/.exec(v)
  location.href = m ? '/play/' + encodeURIComponent(m[1]) + (m[3] ? '?' + m[2] + '=' + encodeURIComponent(m[3]) : '') : '/play/' + encodeURIComponent(v)
}
</script>
</body></html>`
}

/** The player for one content; `access` (a key link's key, a capability) goes on to the media URL, or the video could not be opened. */
export function playerPage (id: string, access: { k?: string, cap?: string } = {}): string {
  const query = new URLSearchParams()
  if (access.k != null) query.set('k', access.k)
  if (access.cap != null) query.set('cap', access.cap)
  const q = query.toString()
  const src = `/c/${encodeURIComponent(id)}${q === '' ? '' : `?${q.replace(/&/g, '&amp;')}`}`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cdn player</title><style>${STYLE} video{max-width:100%;background:#000}</style></head>
<body>
<p><a href="/">← dashboard</a> · <code>${id.replace(/[^a-z0-9]/gi, '')}</code> · <a href="${src}" download>download</a></p>
<video id="player" controls autoplay muted playsinline preload="auto" src="${src}"></video>
</body></html>`
}
