/**
 * Byte ranges of a GET (RFC 9110 §14). Only single ranges are served: a
 * multi-range request gets the whole representation, which §14.2 allows, and
 * no browser or media player needs multipart/byteranges for playback.
 */

export type RangeDecision =
  | { kind: 'full' }
  | { kind: 'partial', start: number, end: number }
  | { kind: 'unsatisfiable', reason: string }

/** Start and end are inclusive, as in Content-Range. */
export function parseRange (header: string | undefined, size: number): RangeDecision {
  if (header == null) return { kind: 'full' }
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header)
  // An unknown range unit must be ignored (§14.2).
  if (m == null) return /^\s*[a-z]+\s*=/i.test(header) ? { kind: 'full' } : { kind: 'unsatisfiable', reason: `malformed Range header "${header.slice(0, 100)}"` }
  const specs = m[1].split(',').map(s => s.trim()).filter(s => s !== '')
  if (specs.length === 0) return { kind: 'unsatisfiable', reason: 'empty Range header' }
  if (specs.length > 1) return specs.every(s => /^(\d*)-(\d*)$/.test(s)) ? { kind: 'full' } : { kind: 'unsatisfiable', reason: 'malformed Range header' }
  const r = /^(\d*)-(\d*)$/.exec(specs[0])
  if (r == null || (r[1] === '' && r[2] === '')) return { kind: 'unsatisfiable', reason: `malformed range "${specs[0]}"` }
  if (r[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(r[2])
    if (!Number.isSafeInteger(n) || n === 0 || size === 0) return { kind: 'unsatisfiable', reason: `range "${specs[0]}" selects no byte of ${size}` }
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(r[1])
  const end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1)
  if (!Number.isSafeInteger(start) || (r[2] !== '' && Number(r[2]) < start)) return { kind: 'unsatisfiable', reason: `malformed range "${specs[0]}"` }
  if (start >= size) return { kind: 'unsatisfiable', reason: `range starts at ${start}, past the end (${size} bytes)` }
  return { kind: 'partial', start, end }
}

/**
 * If-Range (§13.1.5): the Range applies only if the validator still matches,
 * strongly for an entity tag, exactly for a date; otherwise send everything.
 */
export function rangeStillValid (header: string | undefined, etag: string, lastModified: string): boolean {
  if (header == null) return true
  const v = header.trim()
  if (v.startsWith('"') || v.startsWith('W/')) return v === etag
  const when = Date.parse(v)
  return Number.isFinite(when) && when === Date.parse(lastModified)
}
