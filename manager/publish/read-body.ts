import { raceSignal } from 'race-signal'
import { BadInputError, describeError } from '../../core/errors.ts'

/**
 * Reads the request body so that the deadline and a vanished client interrupt
 * even a stalled read, and so that a broken connection surfaces as bad input
 * (the client did not send what it announced), not as an internal error.
 */
export async function * readBody (source: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]()
  let finished = false
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>
      try {
        r = await raceSignal(it.next(), signal)
      } catch (err) {
        if (signal.aborted) throw signal.reason
        throw new BadInputError(`upload interrupted: ${describeError(err)}`, { cause: err })
      }
      if (r.done === true) {
        finished = true
        return
      }
      yield r.value
    }
  } finally {
    // Closing an unfinished request stream destroys it, which frees the socket. Its own
    // error, if any, is a consequence of the failure already being thrown.
    if (!finished) it.return?.().catch(() => {})
  }
}
