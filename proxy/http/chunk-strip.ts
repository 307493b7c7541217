/**
 * One mark per chunk of a download, for the dashboard's chunk strip: what
 * happened to each chunk so far, so parallel fetching, hedging, the cache
 * and bad copies can be seen. A mark only moves forward: a chunk served
 * after a hedge or a bad copy keeps saying so.
 */
import type { ChunkState } from '../fetch/reader-types.ts'

/** Reads longer than this many chunks get no strip (a strip is drawn one cell per chunk). */
export const STRIP_MAX_CHUNKS = 4096

/** What each mark means, in the legend's order. */
export const CHUNK_MARKS = {
  '.': 'waiting',
  r: 'in flight',
  h: 'hedged (asked of a second source)',
  '!': 'failed, retrying',
  x: 'bad copy received, retrying',
  f: 'fetched',
  H: 'fetched after a hedge',
  X: 'fetched after a bad copy',
  c: 'from cache'
} as const

export type ChunkMark = keyof typeof CHUNK_MARKS

const DONE = new Set(['f', 'H', 'X', 'c'])

export function nextChunkMark (mark: string, state: ChunkState): string {
  if (DONE.has(mark)) return mark === 'f' && state === 'bad-copy' ? 'X' : mark
  switch (state) {
    case 'requested': return mark === '.' || mark === '!' ? 'r' : mark
    case 'hedged': return mark === 'x' ? 'x' : 'h'
    case 'failed': return mark === 'x' || mark === 'h' ? mark : '!'
    case 'bad-copy': return 'x'
    case 'cached': return 'c'
    case 'fetched': return mark === 'h' ? 'H' : mark === 'x' ? 'X' : 'f'
  }
}
