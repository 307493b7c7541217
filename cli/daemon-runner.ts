import type { Logger } from '../core/log.ts'
import { CdnError, describeError } from '../core/errors.ts'
import { PortInUseError } from '../core/ports.ts'

export interface RunningDaemon { stop (): Promise<void> }

/**
 * Runs a daemon until SIGINT/SIGTERM: prints one ready line on stdout (JSON with
 * --json, which `cdn up` and scripts read), then stops it cleanly and exits 0.
 */
export async function runDaemon<D extends RunningDaemon> (role: string, start: () => Promise<D>, describe: (d: D) => Record<string, unknown>, json: boolean, logger: Logger, textAfter?: (d: D) => string | Promise<string>): Promise<void> {
  let daemon: D
  try {
    daemon = await start()
  } catch (err) {
    // `cdn up` reads this line to say which of its own flags fixes the problem.
    if (json) process.stdout.write(`${JSON.stringify({ ready: false, role, error: failure(err) })}\n`)
    throw err
  }
  const info = { ready: true, role, pid: process.pid, ...describe(daemon) }
  process.stdout.write(json ? `${JSON.stringify(info)}\n` : `${role} ready: ${Object.entries(describe(daemon)).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ')}\n`)
  if (!json && textAfter != null) process.stdout.write(`${await textAfter(daemon)}\n`)
  logger.info(info, `${role} ready`)
  exitOnSignal(async (signal) => {
    logger.info({ signal }, `${role} stopping`)
    await daemon.stop()
  }, (err) => { logger.error({ err: describeError(err) }, `${role} did not stop cleanly`) })
}

/**
 * The one SIGINT/SIGTERM handling of every long-running command (a daemon,
 * `cdn up`): the first signal runs `stop`, later ones are ignored while it
 * runs, and the process exits 0 once stopped, or 1 after `onFailure`.
 */
export function exitOnSignal (stop: (signal: NodeJS.Signals) => Promise<void>, onFailure: (err: unknown) => void): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    stop(signal).then(() => {
      process.exit(0)
    }, (err: unknown) => {
      onFailure(err)
      process.exit(1)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

function failure (err: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { code: err instanceof CdnError ? err.code : 'ERR_UNKNOWN', message: describeError(err) }
  if (err instanceof PortInUseError) Object.assign(out, { what: err.what, port: err.port, host: err.host })
  return out
}
