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

/**
 * Reads a body of exactly `length` bytes into one buffer (a chunk: at most a
 * few MiB), refusing one that ends short or runs past it.
 */
export async function readExactly (source: AsyncIterable<Uint8Array>, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const out = Buffer.allocUnsafe(length)
  let filled = 0
  for await (const piece of readBody(source, signal)) {
    if (filled + piece.length > length) throw new BadInputError(`body is longer than the ${length} bytes announced for it`)
    out.set(piece, filled)
    filled += piece.length
  }
  if (filled !== length) throw new BadInputError(`body ended after ${filled} of the ${length} bytes announced for it`)
  return out
}
