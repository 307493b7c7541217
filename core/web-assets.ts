/**
 * The chart library (uPlot) the web consoles draw with, read once from
 * node_modules when a daemon starts and served by the daemon itself: a
 * console works without any network access beyond its own host.
 */
import { readFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

export interface WebAsset {
  type: string
  body: Buffer
}

/** The assets by the file name they are served under (e.g. `/assets/uPlot.iife.min.js`). */
export type WebAssets = ReadonlyMap<string, WebAsset>

export const CHART_SCRIPT = 'uPlot.iife.min.js'
export const CHART_STYLE = 'uPlot.min.css'

let loaded: WebAssets | undefined

/** Reads uPlot's script and stylesheet (once per process; both daemons may share one). */
export function chartAssets (): WebAssets {
  if (loaded != null) return loaded
  const dist = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist')
  loaded = new Map([
    [CHART_SCRIPT, { type: 'text/javascript; charset=utf-8', body: readFileSync(join(dist, CHART_SCRIPT)) }],
    [CHART_STYLE, { type: 'text/css; charset=utf-8', body: readFileSync(join(dist, CHART_STYLE)) }]
  ])
  return loaded
}

/** Sends an asset; false when there is none by that name. */
export function sendAsset (res: ServerResponse, assets: WebAssets, name: string, head = false): boolean {
  const a = assets.get(name)
  if (a == null) return false
  res.writeHead(200, {
    'content-type': a.type,
    'content-length': a.body.length,
    // The file changes only with the installed package, i.e. with a restart.
    'cache-control': 'public, max-age=3600',
    'x-content-type-options': 'nosniff'
  })
  res.end(head ? undefined : a.body)
  return true
}

/**
 * Headers of a console page: scripts, styles and data only from the daemon
 * itself (the inline script carries the page's code and first snapshot).
 */
export function pageHeaders (html: string, extra: Record<string, string> = {}): Record<string, string | number> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    // A player's URL may carry a key or a capability: it goes nowhere, not even to the page's own requests.
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'content-security-policy': "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ...extra
  }
}
