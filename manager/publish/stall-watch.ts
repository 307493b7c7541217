/**
 * Tells a stalled upload from a busy manager. A socket idle timeout cannot:
 * while the manager waits for nodes to confirm copies it stops reading, the
 * client's bytes back up in the kernel, and the socket falls silent through
 * no fault of the client. This counts only the time the manager spends
 * waiting for the client's next bytes, on one coarse interval timer.
 */
export interface StallWatch {
  /** the body, read through the watch */
  body: AsyncIterable<Uint8Array>
  /** stops the timer; call when the upload is over, however it ended */
  stop: () => void
}

/**
 * Calls `onStall` once if a read of `body` waits longer than `idleMs` for
 * bytes, and fails that read with the error it returns: a reader blocked on
 * the first bytes of a chunk would otherwise never see the stall.
 */
export function watchStall (body: AsyncIterable<Uint8Array>, idleMs: number, onStall: () => Error, now: () => number = Date.now): StallWatch {
  let waitingSince: number | null = null
  let fired = false
  const stalled = Promise.withResolvers<never>()
  // Nobody may be reading when it fires; the next read still fails with it.
  stalled.promise.catch(() => {})
  const timer = setInterval(() => {
    if (!fired && waitingSince != null && now() - waitingSince >= idleMs) {
      fired = true
      stalled.reject(onStall())
    }
  }, Math.max(10, Math.floor(idleMs / 4)))
  timer.unref()
  const it = body[Symbol.asyncIterator]()
  // A plain iterator rather than a generator: return() must reach the source at once (closing a
  // request stream frees its socket), even while a next() is still waiting for bytes.
  const iterator: AsyncIterator<Uint8Array> = {
    next: async () => {
      waitingSince = now()
      try {
        return await Promise.race([it.next(), stalled.promise])
      } finally {
        waitingSince = null
      }
    },
    return: async (value?: unknown) => {
      waitingSince = null
      return await (it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }))
    }
  }
  return { body: { [Symbol.asyncIterator]: () => iterator }, stop: () => { clearInterval(timer) } }
}
