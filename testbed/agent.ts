/**
 * The testbed's hands on a host: started inside a namespace, it reads one
 * JSON request per line on stdin and answers one JSON line on stdout. The
 * testbed itself runs in the machine's own namespace, which has no route to
 * the hosts' subnet; everything it asks of the network goes through here.
 *
 *   { "id": 1, "op": "json", "url": "http://10.77.0.2:7070/api/nodes" }
 *     → { "id": 1, "status": 200, "body": {…} }
 *   { "id": 2, "op": "get", "url": "http://10.77.0.3:8080/c/<id>", "range": "bytes=0-999" }
 *     → { "id": 2, "status": 206, "bytes": 1000, "sha256": "…", "seconds": 0.01, "ttfbMs": 3, "headers": {…} }
 */
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'

/** `hash: false` only counts the body: a benchmark's client must not compete with what it measures. */
/** `token` is sent as a bearer token: the request travels over the agent's stdin, never its argv. */
interface Request { id: number, op: 'json' | 'get', url: string, range?: string, timeoutMs?: number, hash?: boolean, token?: string }

async function handle (r: Request): Promise<Record<string, unknown>> {
  const signal = AbortSignal.timeout(r.timeoutMs ?? 120_000)
  const t0 = performance.now()
  const sent: Record<string, string> = {}
  if (r.range != null) sent.range = r.range
  if (r.token != null) sent.authorization = `Bearer ${r.token}`
  const res = await fetch(r.url, { headers: sent, signal })
  if (r.op === 'json') return { status: res.status, body: await res.json() }
  const ttfbMs = performance.now() - t0
  const hash = createHash('sha256')
  let bytes = 0
  const hashing = r.hash !== false
  for await (const piece of res.body ?? []) {
    if (hashing) hash.update(piece)
    bytes += piece.byteLength
  }
  const headers: Record<string, string> = {}
  for (const h of ['content-range', 'content-length', 'content-type', 'etag', 'accept-ranges']) {
    const v = res.headers.get(h)
    if (v != null) headers[h] = v
  }
  return { status: res.status, bytes, sha256: hashing ? hash.digest('hex') : null, seconds: (performance.now() - t0) / 1000, ttfbMs, headers }
}

for await (const line of createInterface({ input: process.stdin })) {
  let req: Request
  try {
    req = JSON.parse(line)
  } catch {
    process.stdout.write(`${JSON.stringify({ id: null, error: 'not JSON' })}\n`)
    continue
  }
  // Requests run concurrently; answers carry their id.
  handle(req).then(
    out => { process.stdout.write(`${JSON.stringify({ id: req.id, ...out })}\n`) },
    (err: unknown) => { process.stdout.write(`${JSON.stringify({ id: req.id, error: err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err) })}\n`) }
  )
}
