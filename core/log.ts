import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * One structured (JSON lines) logger per component, with a stable `component`
 * field to filter on. Level from CDN_LOG_LEVEL (default info); written to
 * stderr so that stdout stays free for a command's own output.
 */
export function createLogger (component: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level: process.env.CDN_LOG_LEVEL ?? 'info', base: { component, pid: process.pid, ...bindings } }, pino.destination(2))
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

/**
 * A logger for a command a person runs (get, publish, …): silent unless they
 * asked with `--verbose` or CDN_LOG_LEVEL, so a terminal shows the command's
 * own output and its one-line errors, not JSON log lines.
 */
export function createCommandLogger (component: string, verbose: boolean): Logger {
  const level = process.env.CDN_LOG_LEVEL ?? (verbose ? 'info' : 'silent')
  return pino({ level, base: { component, pid: process.pid } }, pino.destination(2))
}
