/**
 * A lean HTTP/1.1 client for the one request the proxy makes most: `GET
 * /chunk/<cid>` from a node's plain-HTTP data plane, whose answer has a
 * known length. The socket reads the body straight into the caller's buffer
 * (`onread`), and each piece is hashed the moment it lands: no per-read
 * buffer, no stream machinery, no copy. Measured here it costs a quarter of
 * undici's CPU per MiB received. Anything unusual (no Content-Length, a
 * chunked or over-long answer) fails the request and closes the connection;
 * the caller treats it like any other failed source.
 */
import { createHash, type Hash } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { ProtocolError, TimeoutError, UpstreamError } from '../../core/errors.ts'

/** Room for a response head, and for an error answer's body (a one-line JSON message). */
const SCRATCH_BYTES = 64 * 1024
const HEAD_END = Buffer.from('\r\n\r\n')

export interface BlobLinesInit {
  host: string
  port: number
  /** connections kept to this source */
  connections: number
  connectTimeoutMs: number
  /** ms an idle connection is kept; below the node's own keep-alive (Node's default is 5 s) */
  keepAliveMs: number
}

export type BlobAnswer =
  | { status: 200, digest: Buffer, headMs: number }
  | { status: number, text: string, headMs: number }

/** A request that failed on a reused connection before any byte came back: the node had closed it, so one retry is safe. */
class StaleLineError extends UpstreamError {}

interface Request {
  out: Buffer
  started: number
  resolve: (a: BlobAnswer) => void
  reject: (err: unknown) => void
}

class BlobLine {
  readonly socket: Socket
  readonly ready: Promise<void>
  /** the line has served a request before, so the node may have closed it meanwhile */
  used = false
  alive = true
  idleTimer: NodeJS.Timeout | undefined
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES)
  private filled = 0
  private state: 'idle' | 'head' | 'body' | 'error-body' = 'idle'
  private req: Request | undefined
  private hash: Hash | undefined
  private off = 0
  private headMs = 0
  private status = 0
  private bodyStart = 0
  private errorLength = 0
  private keep = true
  private gotBytes = false

  private readonly onSettled: (line: BlobLine) => void

  constructor (init: BlobLinesInit, onSettled: (line: BlobLine) => void) {
    this.onSettled = onSettled
    this.socket = connect({
      host: init.host,
      port: init.port,
      noDelay: true,
      onread: { buffer: () => this.target(), callback: (n: number) => { this.onData(n); return true } }
    })
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.fail(new TimeoutError(`connecting to ${init.host}:${init.port} took over ${init.connectTimeoutMs} ms`)) }, init.connectTimeoutMs)
      this.socket.once('connect', () => { clearTimeout(timer); resolve() })
      this.socket.once('close', () => { clearTimeout(timer); reject(new UpstreamError(`connection to ${init.host}:${init.port} closed`)) })
    })
    this.ready.catch(() => {})
    this.socket.on('error', (err) => { this.fail(new UpstreamError(`connection to ${init.host}:${init.port} failed: ${err.message}`, { cause: err })) })
    this.socket.on('close', () => { this.fail(new UpstreamError(`connection to ${init.host}:${init.port} closed before the answer ended`)) })
  }

  get busy (): boolean {
    return this.req !== undefined
  }

  /** Sends one GET and reads its answer; a 200's body goes into `out`, which must be exactly its size. */
  async get (path: string, host: string, out: Buffer, signal: AbortSignal): Promise<BlobAnswer> {
    signal.throwIfAborted()
    return await new Promise<BlobAnswer>((resolve, reject) => {
      const onAbort = (): void => { this.fail(signal.reason) }
      signal.addEventListener('abort', onAbort, { once: true })
      const done = (): void => { signal.removeEventListener('abort', onAbort) }
      this.req = {
        out,
        started: performance.now(),
        resolve: (a) => { done(); resolve(a) },
        reject: (e) => { done(); reject(e) }
      }
      this.state = 'head'
      this.filled = 0
      this.gotBytes = false
      this.socket.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`)
    })
  }

  close (): void {
    this.alive = false
    clearTimeout(this.idleTimer)
    this.socket.destroy()
  }

  /** Where the next read lands: the body straight into the caller's buffer, anything else into the scratch buffer. */
  private target (): Uint8Array {
    if (this.state === 'body') return this.req!.out.subarray(this.off)
    // Never empty (a zero-length read buffer is an error): a full scratch buffer fails the request first.
    return this.scratch.subarray(Math.min(this.filled, SCRATCH_BYTES - 1))
  }

  private onData (n: number): void {
    this.gotBytes = true
    try {
      if (this.state === 'body') this.onBody(n)
      else if (this.state === 'head') this.onHead(n)
      else if (this.state === 'error-body') this.onErrorBody(n)
      else throw new ProtocolError('the node sent bytes nobody asked for')
    } catch (err) {
      this.fail(err)
    }
  }

  private onBody (n: number): void {
    const req = this.req!
    this.hash!.update(req.out.subarray(this.off, this.off + n))
    this.off += n
    if (this.off === req.out.length) this.finish({ status: 200, digest: this.hash!.digest(), headMs: this.headMs })
  }

  private onHead (n: number): void {
    const from = Math.max(0, this.filled - 3)
    this.filled += n
    const end = this.scratch.subarray(0, this.filled).indexOf(HEAD_END, from)
    if (end < 0) {
      if (this.filled >= SCRATCH_BYTES - 1) throw new ProtocolError('response head too large')
      return
    }
    const req = this.req!
    this.headMs = performance.now() - req.started
    const head = parseHead(this.scratch.toString('latin1', 0, end))
    this.status = head.status
    this.keep = head.keepAlive
    const rest = this.scratch.subarray(end + 4, this.filled)
    if (head.status !== 200) {
      if (head.length === undefined || head.length > SCRATCH_BYTES - end - 5) {
        // An error answer we cannot delimit: its status is the news; the connection is not reused.
        this.keep = false
        this.finish({ status: head.status, text: '', headMs: this.headMs })
        return
      }
      this.state = 'error-body'
      this.bodyStart = end + 4
      this.errorLength = head.length
      this.onErrorBody(0)
      return
    }
    if (head.length === undefined) throw new NoLengthError()
    if (head.length !== req.out.length) throw new SizeMismatch(head.length, req.out.length)
    if (rest.length > req.out.length) throw new ProtocolError('the node sent more than its Content-Length')
    this.hash = createHash('sha256')
    this.off = 0
    this.state = 'body'
    if (rest.length > 0) {
      rest.copy(req.out, 0)
      this.onBody(rest.length)
    } else if (req.out.length === 0) {
      this.finish({ status: 200, digest: this.hash.digest(), headMs: this.headMs })
    }
  }

  private onErrorBody (n: number): void {
    this.filled += n
    const got = this.filled - this.bodyStart
    if (got > this.errorLength) throw new ProtocolError('the node sent more than its Content-Length')
    if (got === this.errorLength) this.finish({ status: this.status, text: this.scratch.toString('utf8', this.bodyStart, this.filled), headMs: this.headMs })
  }

  private finish (answer: BlobAnswer): void {
    const req = this.req!
    this.req = undefined
    // The socket asks for its next read buffer right after this callback: the next answer's head must land at the start.
    this.filled = 0
    this.hash = undefined
    this.state = 'idle'
    this.used = true
    if (!this.keep) this.close()
    req.resolve(answer)
    this.onSettled(this)
  }

  /** Ends the line; a request on it fails with `err` (a stale reused line with a retryable error). */
  private fail (err: unknown): void {
    const req = this.req
    this.req = undefined
    this.hash = undefined
    this.state = 'idle'
    const wasAlive = this.alive
    this.close()
    if (req !== undefined) {
      const stale = this.used && !this.gotBytes && err instanceof UpstreamError && !(err instanceof TimeoutError)
      req.reject(stale ? new StaleLineError((err as Error).message, { cause: err }) : err)
    }
    if (wasAlive || req !== undefined) this.onSettled(this)
  }
}

/** A 200 without Content-Length: this client cannot delimit it (the caller may ask again with a general one). */
class NoLengthError extends UpstreamError {
  constructor () {
    super('chunk answer without Content-Length')
  }
}

class SizeMismatch extends UpstreamError {
  readonly declared: number
  readonly expected: number

  constructor (declared: number, expected: number) {
    super(`answer is ${declared} bytes, expected ${expected}`)
    this.declared = declared
    this.expected = expected
  }
}

function parseHead (text: string): { status: number, length?: number, keepAlive: boolean } {
  const lines = text.split('\r\n')
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '')
  if (m == null) throw new ProtocolError(`not an HTTP/1.x answer: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`)
  let length: number | undefined
  let keepAlive = m[1] === '1'
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) throw new ProtocolError(`bad Content-Length ${JSON.stringify(value)}`)
      length = Number(value)
    } else if (name === 'transfer-encoding') {
      // Chunked framing is not spoken here: such an answer cannot be delimited.
      length = undefined
      keepAlive = false
      return { status: Number(m[2]), length, keepAlive }
    } else if (name === 'connection') {
      const v = value.toLowerCase()
      if (v.includes('close')) keepAlive = false
      else if (v.includes('keep-alive')) keepAlive = true
    }
  }
  return { status: Number(m[2]), length, keepAlive }
}

/** The connections to one source, at most `connections` at once; requests beyond wait for a free one. */
export class BlobLines {
  private readonly init: BlobLinesInit
  private readonly lines = new Set<BlobLine>()
  private readonly idle: BlobLine[] = []
  private readonly waiting: Array<() => void> = []
  private closed = false

  constructor (init: BlobLinesInit) {
    this.init = init
  }

  /** GETs `path`; a 200's body lands in `out` (which must be its exact size) and is hashed on the way. */
  async get (path: string, out: Buffer, signal: AbortSignal): Promise<BlobAnswer> {
    for (let attempt = 0; ; attempt++) {
      const line = await this.acquire(signal)
      try {
        return await line.get(path, `${this.init.host}:${this.init.port}`, out, signal)
      } catch (err) {
        if (err instanceof StaleLineError && attempt === 0 && !signal.aborted) continue
        throw err
      }
    }
  }

  close (): void {
    this.closed = true
    for (const line of this.lines) line.close()
    this.lines.clear()
    this.idle.length = 0
    for (const wake of this.waiting.splice(0)) wake()
  }

  private async acquire (signal: AbortSignal): Promise<BlobLine> {
    for (;;) {
      if (this.closed) throw new UpstreamError('connections to the source are closed')
      signal.throwIfAborted()
      const reused = this.idle.pop()
      if (reused !== undefined) {
        clearTimeout(reused.idleTimer)
        return reused
      }
      if (this.lines.size < this.init.connections) {
        const line = new BlobLine(this.init, (l) => { this.settled(l) })
        this.lines.add(line)
        await raceAbort(line.ready, signal, () => { line.close() })
        return line
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => { signal.removeEventListener('abort', onAbort); resolve() }
        // A waiter that gives up leaves the queue, so the next free line goes to one still waiting.
        const onAbort = (): void => {
          const i = this.waiting.indexOf(wake)
          if (i >= 0) this.waiting.splice(i, 1)
          resolve()
        }
        signal.addEventListener('abort', onAbort, { once: true })
        this.waiting.push(wake)
      })
    }
  }

  /** A line finished a request (back to idle, or gone): the next waiter gets its turn. */
  private settled (line: BlobLine): void {
    if (!line.alive) this.lines.delete(line)
    else if (!line.busy && !this.closed && !this.idle.includes(line)) {
      this.idle.push(line)
      line.idleTimer = setTimeout(() => {
        const i = this.idle.indexOf(line)
        if (i >= 0) this.idle.splice(i, 1)
        line.close()
        this.lines.delete(line)
      }, this.init.keepAliveMs)
      line.idleTimer.unref()
    }
    const i = this.idle.indexOf(line)
    if (!line.alive && i >= 0) this.idle.splice(i, 1)
    this.waiting.shift()?.()
  }
}

async function raceAbort (p: Promise<void>, signal: AbortSignal, onAbort: () => void): Promise<void> {
  if (signal.aborted) {
    onAbort()
    throw signal.reason
  }
  let listener: (() => void) | undefined
  try {
    await Promise.race([p, new Promise<never>((_resolve, reject) => {
      listener = () => { onAbort(); reject(signal.reason) }
      signal.addEventListener('abort', listener, { once: true })
    })])
  } finally {
    if (listener !== undefined) signal.removeEventListener('abort', listener)
  }
}

export { NoLengthError, SizeMismatch }
