import type { AbortOptions, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { raceSignal } from './abort.ts'
import { CdnError, ProtocolError, TimeoutError } from './errors.ts'

/** Orders carry lists of blob ids; 8 MiB holds tens of thousands of them and bounds a hostile peer. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024

/** A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. */
export function encodeFrame (value: unknown): Uint8Array {
  const body = Buffer.from(JSON.stringify(value))
  if (body.length > MAX_FRAME_BYTES) throw new ProtocolError('control frame too large')
  const out = Buffer.allocUnsafe(4 + body.length)
  out.writeUInt32BE(body.length, 0)
  body.copy(out, 4)
  return out
}

/** Reads exactly one frame from a stream, refusing oversize or malformed framing. */
export async function readFrame (stream: AsyncIterable<Uint8Array | { subarray: () => Uint8Array }>): Promise<unknown> {
  const parts: Uint8Array[] = []
  let have = 0
  let want = -1
  for await (const piece of stream) {
    const bytes = piece instanceof Uint8Array ? piece : piece.subarray()
    parts.push(bytes)
    have += bytes.length
    if (want < 0 && have >= 4) {
      want = Buffer.concat(parts).readUInt32BE(0)
      if (want > MAX_FRAME_BYTES) throw new ProtocolError('control frame too large')
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

async function sendFrame (stream: Stream, value: unknown, options: AbortOptions): Promise<void> {
  if (!stream.send(encodeFrame(value))) await stream.onDrain(options)
}

export interface CallOptions extends AbortOptions {
  /** ms; the call is aborted after it (default 30 s) */
  timeout?: number
}

/** One request, one reply, over a fresh stream to `peer`. */
export async function rpcCall (libp2p: Libp2p, peer: PeerId | Multiaddr | Multiaddr[], protocol: string, request: unknown, options: CallOptions = {}): Promise<unknown> {
  const timeout = options.timeout ?? 30_000
  const signal = AbortSignal.any([AbortSignal.timeout(timeout), ...(options.signal != null ? [options.signal] : [])])
  let stream: Stream | undefined
  try {
    stream = await libp2p.dialProtocol(peer, protocol, { signal })
    await sendFrame(stream, request, { signal })
    await stream.close({ signal })
    const reply = await raceSignal(readFrame(stream), signal)
    return reply
  } catch (err) {
    stream?.abort(err instanceof Error ? err : new Error(String(err)))
    if (signal.aborted && options.signal?.aborted !== true) throw new TimeoutError(`control call timed out after ${timeout} ms`, { cause: err })
    throw err
  }
}

export type RpcHandler = (request: unknown, remotePeer: PeerId, options: AbortOptions) => Promise<unknown>

export interface ServeOptions {
  /** ms a handler may run, including reading the request (default 10 min: store orders move data) */
  timeout?: number
  onError?: (err: unknown, remotePeer: PeerId) => void
}

/**
 * Registers a request/reply handler. A handler's CdnError becomes an `error`
 * reply with its code, so the caller learns why it was refused.
 */
export async function serveRpc (libp2p: Libp2p, protocol: string, handler: RpcHandler, opts: ServeOptions = {}): Promise<void> {
  await libp2p.handle(protocol, async (stream, connection) => {
    const signal = AbortSignal.timeout(opts.timeout ?? 600_000)
    let reply: unknown
    try {
      const request = await raceSignal(readFrame(stream), signal)
      reply = await handler(request, connection.remotePeer, { signal })
    } catch (err) {
      opts.onError?.(err, connection.remotePeer)
      const code = err instanceof CdnError ? err.code : 'ERR_INTERNAL'
      const message = err instanceof Error ? err.message : String(err)
      reply = { type: 'error', code, message }
    }
    try {
      await sendFrame(stream, reply, { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }, { runOnLimitedConnection: false })
}
