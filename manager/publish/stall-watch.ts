/**
 * Tells a stalled upload from a busy manager. A socket idle timeout cannot:
 * while the manager waits for nodes to confirm copies it stops reading, the
 * client's bytes back up in the kernel, and the socket falls silent through
 * no fault of the client. This counts only the time the manager spends
 * waiting for the client's next bytes, on one coarse interval timer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadInputError } from '../../core/errors.ts'

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

export interface UploadBody {
  /** the request's body, read through the stall watch */
  body: AsyncIterable<Uint8Array>
  /** aborted when the client goes away or stalls */
  signal: AbortSignal
  /** call when the request is answered, however it ended */
  stop: () => void
}

/**
 * Watches an upload request: its body through a stall watch, and a signal
 * aborted when the client goes away or stops sending for `idleMs`. The
 * socket's own idle cut is turned off: it would also fire while the manager
 * stops reading to wait for nodes to confirm copies.
 */
export function watchUpload (req: IncomingMessage, res: ServerResponse, idleMs: number, what: string): UploadBody {
  const controller = new AbortController()
  const onClose = (): void => {
    if (!res.writableEnded) controller.abort(new BadInputError(`${what} aborted: the client closed the connection`))
  }
  res.once('close', onClose)
  req.socket.setTimeout(0)
  const watch = watchStall(req, idleMs, () => {
    const err = new BadInputError(`${what} stalled: no bytes for ${idleMs} ms`)
    controller.abort(err)
    return err
  })
  return {
    body: watch.body,
    signal: controller.signal,
    stop: () => {
      watch.stop()
      res.off('close', onClose)
    }
  }
}
