/**
 * The socket side of the manager's HTTP API: plain HTTP, or HTTPS when given
 * a certificate, always under core/http-guard.ts's limits.
 *
 * With TLS, one port serves both: the first byte of a connection tells a TLS
 * handshake (0x16) from a plain request. HTTPS carries the API (tokens, keys,
 * capabilities); plain HTTP answers only the blob routes nodes fetch from
 * (`/staging/`, `/manifest/`: ciphertext named by its hash, which the node
 * checks), so nodes need neither the certificate's CA nor a second port.
 */
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { guardServer, HTTP_LIMIT_DEFAULTS, type HttpLimits } from '../../core/http-guard.ts'

export interface ApiServerOptions {
  /** answers the whole API */
  handler: RequestListener
  /** with TLS, answers plain-HTTP requests (the blob routes) */
  plainHandler: RequestListener
  /** PEM certificate chain and private key; plain HTTP without */
  tls?: { cert: Buffer | string, key: Buffer | string }
  limits: HttpLimits
}

export interface ApiServer {
  scheme: 'http' | 'https'
  listen (port: number, host: string): Promise<AddressInfo>
  close (): Promise<void>
}

const TLS_HANDSHAKE = 0x16

async function listenOn (server: NetServer, port: number, host: string): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return server.address() as AddressInfo
}

export function createApiServer (o: ApiServerOptions): ApiServer {
  if (o.tls == null) {
    const server = createHttpServer(o.handler)
    guardServer(server, o.limits)
    return {
      scheme: 'http',
      listen: async (port, host) => await listenOn(server, port, host),
      close: async () => {
        const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
        // Idle keep-alive sockets would hold close() open; uploads were already aborted.
        server.closeAllConnections()
        await closed
      }
    }
  }
  return createDualServer(o, o.tls)
}

function createDualServer (o: ApiServerOptions, tls: { cert: Buffer | string, key: Buffer | string }): ApiServer {
  const limits = { ...HTTP_LIMIT_DEFAULTS, ...Object.fromEntries(Object.entries(o.limits).filter(([, v]) => v !== undefined)) }
  const secure = createHttpsServer({ cert: tls.cert, key: tls.key, handshakeTimeout: limits.headersTimeout }, o.handler)
  // node:https servers take the same timeouts as node:http ones.
  guardServer(secure as unknown as Server, o.limits)
  const plain = createHttpServer(o.plainHandler)
  guardServer(plain, o.limits)

  const sockets = new Set<Socket>()
  const perClient = new Map<string, number>()
  const front = createNetServer({ pauseOnConnect: true }, (socket) => {
    const who = socket.remoteAddress ?? 'unknown'
    const n = (perClient.get(who) ?? 0) + 1
    if (n > limits.maxConnectionsPerClient) {
      socket.destroy()
      return
    }
    perClient.set(who, n)
    sockets.add(socket)
    socket.once('close', () => {
      sockets.delete(socket)
      const left = (perClient.get(who) ?? 1) - 1
      if (left <= 0) perClient.delete(who)
      else perClient.set(who, left)
    })
    // Until the inner server owns it, a silent socket is cut like one that sends no headers.
    const onError = (): void => { socket.destroy() }
    socket.on('error', onError)
    socket.setTimeout(limits.headersTimeout, () => { socket.destroy() })
    socket.once('readable', () => {
      const first = socket.read(1) as Buffer | null
      if (first == null) {
        socket.destroy()
        return
      }
      socket.unshift(first)
      socket.setTimeout(0)
      socket.off('error', onError)
      // Documented: emitting 'connection' hands a socket to an HTTP server; a TLS server reads what is already buffered.
      ;(first[0] === TLS_HANDSHAKE ? secure : plain).emit('connection', socket)
    })
  })
  front.maxConnections = limits.maxConnections

  return {
    scheme: 'https',
    listen: async (port, host) => await listenOn(front, port, host),
    close: async () => {
      const closed = new Promise<void>((resolve) => { front.close(() => { resolve() }) })
      secure.closeAllConnections()
      plain.closeAllConnections()
      for (const s of sockets) s.destroy()
      await closed
    }
  }
}
