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
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, `${role} stopping`)
    daemon.stop().then(() => {
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err: describeError(err) }, `${role} did not stop cleanly`)
      process.exit(1)
    })
  }
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGTERM', () => { stop('SIGTERM') })
}

function failure (err: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { code: err instanceof CdnError ? err.code : 'ERR_UNKNOWN', message: describeError(err) }
  if (err instanceof PortInUseError) Object.assign(out, { what: err.what, port: err.port, host: err.host })
  return out
}
