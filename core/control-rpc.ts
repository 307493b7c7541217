/**
 * Framing of the control protocol: one length-prefixed JSON request frame and
 * one reply frame per libp2p stream.
 *
 * A hostile peer must not be able to make either side hold memory or a
 * stream: the server decides whether the remote peer (authenticated by noise)
 * may talk at all before it reads a byte, every frame has a size cap chosen
 * per protocol direction, and reading a request has a deadline of its own.
 */
import type { AbortOptions, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { raceSignal } from 'race-signal'
import { CdnError, ForbiddenError, InterruptedError, ProtocolError, TimeoutError } from './errors.ts'

/** The largest frame anyone may send: orders carry lists of blob ids; 8 MiB holds tens of thousands of them. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024
/** Default cap of a frame read, when the caller names none. */
export const DEFAULT_READ_FRAME_BYTES = 1024 * 1024
/** Default time a server gives a peer to send its whole request frame. */
export const DEFAULT_REQUEST_READ_MS = 10_000

/** What a refused peer may have in flight before its stream is reset. */
const REFUSED_BUFFER_BYTES = 64 * 1024

/** A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. */
export function encodeFrame (value: unknown, maxBytes = MAX_FRAME_BYTES): Uint8Array {
  const body = Buffer.from(JSON.stringify(value))
  if (body.length > maxBytes) throw new ProtocolError(`control frame of ${body.length} bytes is over the ${maxBytes}-byte cap`)
  const out = Buffer.allocUnsafe(4 + body.length)
  out.writeUInt32BE(body.length, 0)
  body.copy(out, 4)
  return out
}

/**
 * Reads exactly one frame from a stream, refusing a frame whose announced
 * length is over `maxBytes` as soon as the length is known (its body is never read).
 */
export async function readFrame (stream: AsyncIterable<Uint8Array | { subarray: () => Uint8Array }>, maxBytes = DEFAULT_READ_FRAME_BYTES): Promise<unknown> {
  const parts: Uint8Array[] = []
  let have = 0
  let want = -1
  for await (const piece of stream) {
    const bytes = piece instanceof Uint8Array ? piece : piece.subarray()
    parts.push(bytes)
    have += bytes.length
    if (want < 0 && have >= 4) {
      want = Buffer.concat(parts).readUInt32BE(0)
      if (want > maxBytes) throw new ProtocolError(`control frame of ${want} bytes is over the ${maxBytes}-byte cap`)
    }
    if (want >= 0 && have >= 4 + want) break
  }
  if (want < 0 || have < 4 + want) throw new ProtocolError('control stream ended before a whole frame arrived')
  const all = Buffer.concat(parts)
  try {
    return JSON.parse(all.subarray(4, 4 + want).toString('utf8'))
  } catch (err) {
    throw new ProtocolError('control frame is not JSON', { cause: err })
  }
}

async function sendFrame (stream: Stream, value: unknown, options: AbortOptions, maxBytes = MAX_FRAME_BYTES): Promise<void> {
  if (!stream.send(encodeFrame(value, maxBytes))) await stream.onDrain(options)
}

export interface CallOptions extends AbortOptions {
  /** ms; the call is aborted after it (default 30 s) */
  timeout?: number
  /** largest reply frame accepted (default 1 MiB) */
  maxReplyBytes?: number
}

/** One request, one reply, over a fresh stream to `peer`. */
export async function rpcCall (libp2p: Libp2p, peer: PeerId | Multiaddr | Multiaddr[], protocol: string, request: unknown, options: CallOptions = {}): Promise<unknown> {
  const timeout = options.timeout ?? 30_000
  const maxReply = options.maxReplyBytes ?? DEFAULT_READ_FRAME_BYTES
  const signal = AbortSignal.any([AbortSignal.timeout(timeout), ...(options.signal != null ? [options.signal] : [])])
  let stream: Stream | undefined
  try {
    stream = await libp2p.dialProtocol(peer, protocol, { signal })
    stream.maxReadBufferLength = 4 + maxReply
    await sendFrame(stream, request, { signal })
    await stream.close({ signal })
    const reply = await raceSignal(readFrame(stream, maxReply), signal)
    return reply
  } catch (err) {
    stream?.abort(abortReason(err))
    if (signal.aborted && options.signal?.aborted !== true) throw new TimeoutError(`control call timed out after ${timeout} ms`, { cause: err })
    throw err
  }
}

export interface HandlerContext extends AbortOptions {
  /** runs `fn` once the reply has been sent (or could not be): for work that would cut the stream, like stopping */
  afterReply: (fn: () => void) => void
}

export type RpcHandler = (request: unknown, remotePeer: PeerId, context: HandlerContext) => Promise<unknown>

export interface ServeOptions {
  /**
   * Whether `remotePeer` may talk on this protocol at all. Decided before a
   * byte of its request is read; a refused peer gets an ERR_FORBIDDEN reply
   * and its stream is closed.
   */
  allow: (remotePeer: PeerId) => boolean
  /** largest request frame read (default 1 MiB); a larger one is refused from its length prefix alone */
  maxRequestBytes?: number
  /** ms the peer has to send its whole request (default 10 s); a peer that sends nothing is cut */
  requestReadMs?: number
  /** ms a handler may run after its request was read (default 10 min: store orders move data) */
  timeout?: number
  /** told of requests that failed: refused peers, bad frames, handler errors */
  onError?: (err: unknown, remotePeer: PeerId) => void
}

function errorReply (err: unknown): { type: 'error', code: string, message: string } {
  const code = err instanceof CdnError ? err.code : 'ERR_INTERNAL'
  const message = err instanceof Error ? err.message : String(err)
  return { type: 'error', code, message }
}

/**
 * Registers a request/reply handler. A handler's CdnError becomes an `error`
 * reply with its code, so the caller learns why it was refused. A request
 * that does not arrive in time cuts the stream without a reply.
 */
export async function serveRpc (libp2p: Libp2p, protocol: string, handler: RpcHandler, opts: ServeOptions): Promise<void> {
  const maxRequest = opts.maxRequestBytes ?? DEFAULT_READ_FRAME_BYTES
  const readMs = opts.requestReadMs ?? DEFAULT_REQUEST_READ_MS
  await libp2p.handle(protocol, async (stream, connection) => {
    const peer = connection.remotePeer
    const after: Array<() => void> = []
    const context = (signal: AbortSignal): HandlerContext => ({ signal, afterReply: (fn) => { after.push(fn) } })
    let reply: unknown
    const replySignal = AbortSignal.timeout(readMs)
    try {
      if (!opts.allow(peer)) {
        // Not a byte of its request is read: a stranger's frame costs nothing, and more than a
        // little of it buffered resets the stream.
        stream.maxReadBufferLength = REFUSED_BUFFER_BYTES
        const refused = new ForbiddenError(`peer ${peer.toString()} may not use ${protocol} here`)
        opts.onError?.(refused, peer)
        await replyAndClose(stream, errorReply(refused), replySignal)
        return
      }
      // Bytes beyond one frame would only pile up in the stream's buffer: past this, it is reset.
      stream.maxReadBufferLength = 4 + maxRequest
      let request: unknown
      try {
        request = await raceSignal(readFrame(stream, maxRequest), AbortSignal.timeout(readMs))
      } catch (err) {
        opts.onError?.(err, peer)
        if (err instanceof ProtocolError) {
          await replyAndClose(stream, errorReply(err), replySignal)
        } else {
          stream.abort(new TimeoutError(`no whole request frame within ${readMs} ms`, { cause: err }))
        }
        return
      }
      const signal = AbortSignal.timeout(opts.timeout ?? 600_000)
      try {
        reply = await handler(request, peer, context(signal))
      } catch (err) {
        opts.onError?.(err, peer)
        reply = errorReply(err)
      }
      await replyAndClose(stream, reply, AbortSignal.timeout(readMs))
    } finally {
      for (const fn of after) fn()
    }
  }, { runOnLimitedConnection: false })
}

/** A stream is reset with what cut it; a thrown non-Error still gets a named error. */
function abortReason (err: unknown): Error {
  return err instanceof Error ? err : new InterruptedError(String(err), { cause: err })
}

async function replyAndClose (stream: Stream, reply: unknown, signal: AbortSignal): Promise<void> {
  try {
    await sendFrame(stream, reply, { signal })
    await stream.close({ signal })
  } catch (err) {
    stream.abort(abortReason(err))
  }
}
