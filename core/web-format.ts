/**
 * How the web consoles (the proxy's dashboard, the manager's /ui) write
 * sizes, rates and long ids. Plain functions with no imports, so the pages
 * embed their very source (`WEB_FORMAT_SCRIPT`) and the unit tests check the
 * same code the browser runs.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

/** `100 B`, `12.3 KiB`, `1.5 MiB`: a 100-byte Range is never "0.0 MiB". */
export function formatBytes (n: number): string {
  if (!Number.isFinite(n) || n < 0) return '–'
  let v = n
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024
    u++
  }
  if (u === 0) return `${Math.round(v)} B`
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${UNITS[u]}`
}

export function formatRate (bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`
}

/** A part of a whole as a percentage; an empty whole is complete. */
export function formatShare (part: number, whole: number): string {
  if (!(whole > 0)) return '100%'
  const p = 100 * part / whole
  return `${p >= 10 || p === 0 ? Math.round(p) : p.toFixed(1)}%`
}

/** `12D3Ko…x7Qz`: the first and last characters of a peer id, enough to tell the nodes of a pool apart. */
export function shortId (id: string): string {
  const s = String(id)
  return s.length <= 14 ? s : `${s.slice(0, 6)}…${s.slice(-4)}`
}

/** `3 s ago`, `2 min ago`, from an ISO date or ms since the epoch. */
export function formatAgo (at: string | number, now: number): string {
  const ms = now - (typeof at === 'number' ? at : Date.parse(at))
  if (!Number.isFinite(ms)) return '–'
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  return `${Math.round(s / 3600)} h ago`
}

/** Escapes text for HTML. */
export function esc (s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** The functions above as one script for a page (type annotations already stripped by Node). */
export const WEB_FORMAT_SCRIPT = [
  `const UNITS = ${JSON.stringify(UNITS)}`,
  formatBytes, formatRate, formatShare, shortId, formatAgo, esc
].map(String).join('\n')

/** JSON inside a `<script type="application/json">`: no `</script>` or `<!--` can close or confuse it. */
export function embedJson (value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')
}
