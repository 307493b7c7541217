import cliProgress from 'cli-progress'
import { formatBytes } from '../core/units.ts'

export interface Progress {
  update (done: number, extra?: string): void
  stop (): void
}

/**
 * A byte progress bar on a terminal (stderr, so stdout stays parseable);
 * silent when stderr is not a TTY or when JSON output was asked for.
 */
export function byteProgress (label: string, total: number, enabled: boolean): Progress {
  if (!enabled || process.stderr.isTTY !== true) return { update () {}, stop () {} }
  const started = performance.now()
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {percentage}% | {doneText} / {totalText} | {speed} {extra}`,
    hideCursor: true,
    clearOnComplete: false
  }, cliProgress.Presets.shades_classic)
  bar.start(Math.max(total, 1), 0, { doneText: formatBytes(0), totalText: formatBytes(total), speed: '', extra: '' })
  return {
    update (done, extra = '') {
      const secs = (performance.now() - started) / 1000
      const speed = secs > 0 ? `${formatBytes(done / secs)}/s` : ''
      bar.update(Math.min(done, Math.max(total, 1)), { doneText: formatBytes(done), speed, extra })
    },
    stop () { bar.stop() }
  }
}
