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
