import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { guardServer } from '../../../core/http-guard.ts'

async function serve (limits: Parameters<typeof guardServer>[1]) {
  const server = createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')) })
  const counts = guardServer(server, limits)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  return { server, counts, port }
}

function closed (s: Socket): Promise<void> {
  return new Promise(resolve => { if (s.destroyed) resolve(); else s.once('close', () => resolve()) })
}

test('a client past its connection cap is cut, others are not', async () => {
  const { server, counts, port } = await serve({ maxConnectionsPerClient: 3 })
  const socks = await Promise.all(Array.from({ length: 5 }, async () => {
    const s = connect(port, '127.0.0.1'); await once(s, 'connect'); return s
  }))
  await Promise.race([Promise.all(socks.slice(3).map(closed)), new Promise(r => setTimeout(r, 5000))])
  assert.is(socks.filter(s => s.destroyed || s.readableEnded).length >= 2, true)
  assert.is(counts.get('127.0.0.1'), 3)
  for (const s of socks) s.destroy()
  server.close()
})

test('a stalled body is cut after the idle timeout', async () => {
  const { server, port } = await serve({ idleTimeout: 300 })
  const s = connect(port, '127.0.0.1'); await once(s, 'connect')
  s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\na')
  await Promise.race([closed(s), new Promise((_r, reject) => setTimeout(() => reject(new Error('still open after 5 s')), 5000))])
  server.close()
})

test.run()
