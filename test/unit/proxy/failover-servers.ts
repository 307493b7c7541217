/**
 * Managers for the failover tests, as real `node:http` servers on loopback:
 * a closed port, one that answers every request with a status (a 503, a
 * 404), and one whose routes a test writes. Each records what it was asked.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Seen { method: string, path: string, bytes: number }

export interface FakeManager {
  url: string
  /** every request, in order, with the body bytes it delivered */
  seen: Seen[]
  close (): Promise<void>
}

/** A URL nothing listens on: a port that was just free, its listener closed. */
export async function closedPort (): Promise<string> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  return `http://127.0.0.1:${port}`
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * A manager whose `route` decides each answer once the body is in; a route
 * given the request first (`early`) may cut the connection while the body
 * is still arriving, as a manager killed during an upload.
 */
export async function fakeManager (route: (req: IncomingMessage, res: ServerResponse) => void, early?: (req: IncomingMessage, seen: Seen) => boolean): Promise<FakeManager> {
  const seen: Seen[] = []
  const server: Server = createServer((req, res) => {
    const entry: Seen = { method: req.method ?? '', path: req.url ?? '', bytes: 0 }
    seen.push(entry)
    req.on('data', (d: Buffer) => { entry.bytes += d.length })
    if (early?.(req, entry) === true) return
    req.on('end', () => { route(req, res) })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      server.closeAllConnections()
      await closed
    }
  }
}

/** A manager that answers everything with one status and a JSON error, as a manager shutting down (503) or refusing (4xx). */
export async function answering (status: number, message = `status ${status}`): Promise<FakeManager> {
  return await fakeManager((_req, res) => { sendJson(res, status, { error: { code: 'ERR_TEST', message } }) })
}
