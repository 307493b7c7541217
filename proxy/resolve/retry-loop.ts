/**
 * The shape of the proxy's background links to the manager (its identity,
 * the pool's node list): try every period; after a failure try again sooner,
 * the pause doubling up to the period, until the link stops.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import pRetry from 'p-retry'
import { UpstreamError } from '../../core/errors.ts'

export interface RetryLoopInit {
  /** ms before the first try */
  firstWaitMs: number
  /** ms between tries once one succeeded */
  periodMs: number
  /** ms before the first retry after a failure; doubles up to periodMs */
  retryMs: number
  signal: AbortSignal
  /** told each failure; `failures` counts the ones before it since the last success */
  onFailure: (err: unknown, failures: number) => void
  /** told a success that ended `failures` failures */
  onRecovered?: (failures: number) => void
}

/** Runs `attempt` until `signal` aborts; resolves then (never rejects). */
export async function retryLoop (attempt: () => Promise<unknown>, o: RetryLoopInit): Promise<void> {
  const { signal } = o
  if (!await pause(o.firstWaitMs, signal)) return
  while (!signal.aborted) {
    let failures = 0
    try {
      await pRetry(async () => { await retriable(attempt) }, {
        retries: Infinity,
        factor: 2,
        minTimeout: o.retryMs,
        maxTimeout: o.periodMs,
        randomize: false,
        signal,
        onFailedAttempt: ({ error }) => {
          if (!signal.aborted) o.onFailure(error instanceof Carried ? error.cause : error, failures++)
        }
      })
      if (failures > 0) o.onRecovered?.(failures)
    } catch {
      return // only an abort ends the retries
    }
    if (!await pause(o.periodMs, signal)) return
  }
}

/** Carries a failure p-retry would not retry: a TypeError that is no network error (a bad URL, say), or a non-Error. */
class Carried extends UpstreamError {}

/** Here every failure is retried, whatever was thrown. */
async function retriable (attempt: () => Promise<unknown>): Promise<void> {
  try {
    await attempt()
  } catch (err) {
    if (err instanceof Error && !(err instanceof TypeError)) throw err
    throw new Carried(err instanceof Error ? err.message : String(err), { cause: err })
  }
}

async function pause (ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal })
    return true
  } catch {
    return false
  }
}
