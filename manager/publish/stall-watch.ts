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
  let stall: Error | undefined
  /** fails the read waiting now, if any */
  let failWaiting: ((err: Error) => void) | undefined
  const timer = setInterval(() => {
    if (stall == null && waitingSince != null && now() - waitingSince >= idleMs) {
      stall = onStall()
      failWaiting?.(stall)
    }
  }, Math.max(10, Math.floor(idleMs / 4)))
  timer.unref()
  const it = body[Symbol.asyncIterator]()
  // A plain iterator rather than a generator: return() must reach the source at once (closing a
  // request stream frees its socket), even while a next() is still waiting for bytes.
  const iterator: AsyncIterator<Uint8Array> = {
    next: async () => {
      if (stall != null) throw stall
      waitingSince = now()
      // A fresh promise per read: racing every read against one long-lived promise would pile a
      // reaction per read onto it, each keeping that read's bytes alive until the upload ends.
      const stalled = new Promise<never>((_resolve, reject) => { failWaiting = reject })
      try {
        return await Promise.race([it.next(), stalled])
      } finally {
        waitingSince = null
        failWaiting = undefined
      }
    },
    return: async (value?: unknown) => {
      waitingSince = null
      return await (it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }))
    }
  }
  return { body: { [Symbol.asyncIterator]: () => iterator }, stop: () => { clearInterval(timer) } }
}
