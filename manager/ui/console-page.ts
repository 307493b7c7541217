/**
 * The console's two pages: the login form (an admin token, posted, never in
 * a URL) and the console itself with its first state embedded, so it shows
 * the pool at once and then follows the live stream.
 */
import { CHART_SCRIPT, CHART_STYLE } from '../../core/web-assets.ts'
import { embedJson, esc } from '../../core/web-format.ts'
import type { ConsoleState } from './console-data.ts'
import { CONSOLE_SCRIPT } from './console-script.ts'

const STYLE = `
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#f5f6f8}
header{background:#1f2a37;color:#fff;padding:10px 2em;display:flex;gap:2em;align-items:center}
header h1{font-size:1.2em;margin:0}nav a{color:#cbd5e1;text-decoration:none;margin-right:1.2em;padding:4px 0}
nav a.on{color:#fff;border-bottom:2px solid #5bc0de}header form{margin-left:auto}
main{padding:1em 2em;max-width:1200px}h2{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top;font-variant-numeric:tabular-nums}
th small{color:#888;font-weight:normal}.num{font-variant-numeric:tabular-nums}
code{font-size:12px}.muted{color:#888}
.bar{background:#e6e9ee;height:9px;width:110px;display:inline-block;border-radius:2px;vertical-align:middle}
.bar>span{background:#3aa876;height:9px;display:block;border-radius:2px}.bar.warm>span{background:#e4a11b}.bar.hot>span{background:#d9534f}
.health{padding:1px 7px;border-radius:8px;font-size:12px;background:#eee}.h-ok{background:#d7f2e1;color:#17643a}
.h-dead{background:#fadbd8;color:#922}.h-late,.h-disk-high,.h-egress-high,.h-draining{background:#fdf0cf;color:#7a5a00}
tr.s-dead{color:#999}tr.fresh,tr.event.fresh{animation:flash 3s}
@keyframes flash{from{background:#fff3b0}to{background:#fff}}
tr.selected{background:#eef6ff}.panel{background:#fff;padding:8px;border:1px solid #e3e6ea}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #e3e6ea;padding:10px 14px;min-width:150px}
.card .big{font-size:1.6em;font-weight:600}.card.bad .big{color:#c62828}.card.warn .big{color:#b7791f}.card.good .big{color:#2e7d32}
ul.list{background:#fff;border:1px solid #e3e6ea;padding:8px 8px 8px 28px;margin:0}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;vertical-align:middle}
.filters{margin:8px 0;display:flex;gap:8px}.filters input{width:16em}
td.detail{font-size:12px;color:#555;max-width:420px;word-break:break-all}
.login{max-width:420px;margin:12vh auto;background:#fff;padding:2em;border:1px solid #e3e6ea}
.login input{width:100%;box-sizing:border-box;padding:6px;margin:8px 0}.error{color:#c62828}
#offline{background:#fadbd8;color:#922;padding:6px 2em}`

function head (title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${esc(title)}</title>
<link rel="stylesheet" href="/ui/assets/${CHART_STYLE}"><style>${STYLE}</style></head>`
}

/** The login form; `message` says why the last attempt was refused. */
export function loginPage (message?: string): string {
  return `${head('cdn console · log in')}
<body><form class="login" method="post" action="/ui/login" autocomplete="off">
<h1>cdn manager console</h1>
<p>Log in with an admin token (<code>cdn manager start</code> wrote one to <code>admin.token</code> in its data folder).</p>
${message != null ? `<p class="error" role="alert" id="login-error">${esc(message)}</p>` : ''}
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form></body></html>`
}

export function consolePage (state: ConsoleState): string {
  return `${head('cdn console')}
<body>
<header><h1>cdn console</h1>
<nav><a href="#pool">Pool</a><a href="#contents">Contents</a><a href="#health">Replication health</a><a href="#events">Events</a></nav>
<span class="muted">updated <span id="updated"></span></span>
<form method="post" action="/ui/logout"><button>Log out</button></form></header>
<div id="offline" hidden>The live stream is interrupted (manager stopped, or the session ended: reload to log in again).</div>
<main>
<section class="tab" id="tab-pool">
<h2>Nodes <small class="muted" id="pool-summary"></small></h2>
<table><thead><tr><th>node <small>peer id · address</small></th><th>zone</th><th>state</th><th>health</th><th>disk <small>used of capacity</small></th><th>egress <small>rate of cap</small></th><th>copies <small>chunks</small></th><th>last heartbeat</th></tr></thead>
<tbody id="nodes"></tbody></table>
<h2>Joins and deaths</h2><ul class="list" id="node-events"></ul>
</section>
<section class="tab" id="tab-contents" hidden>
<h2>Contents</h2>
<table><thead><tr><th>content</th><th>size</th><th>chunks</th><th>R <small>base copies</small></th><th>copies <small>min–max over chunks</small></th><th>wanted <small>copies</small></th><th>demand <small>per second</small></th></tr></thead>
<tbody id="contents"></tbody></table>
<h2>Demand against copies: <span id="chart-title"></span></h2>
<div class="panel" id="chart-box"></div>
<h2>Moves marked on the chart</h2><ul class="list" id="marks"></ul>
</section>
<section class="tab" id="tab-health" hidden>
<h2>Replication health</h2><div class="cards" id="health-cards"></div>
<h2>Move budget in use</h2><p id="budget"></p>
<h2>Blocked repairs</h2><ul class="list" id="blocked"></ul>
</section>
<section class="tab" id="tab-events" hidden>
<h2>Events</h2>
<div class="filters"><select id="f-kind" aria-label="kind"></select><input id="f-node" placeholder="node (part of its peer id)" aria-label="node"><input id="f-content" placeholder="content (part of its id)" aria-label="content"></div>
<table><thead><tr><th>time</th><th>kind</th><th>content</th><th>node</th><th>detail</th></tr></thead><tbody id="events"></tbody></table>
</section>
</main>
<script src="/ui/assets/${CHART_SCRIPT}"></script>
<script type="application/json" id="state">${embedJson(state)}</script>
<script>
${CONSOLE_SCRIPT}</script>
</body></html>`
}
