// Ad-hoc: streaming named publish vs upload session with 4 parallel PUTs, 256 MiB, R=3, 4 nodes.
import { createHash, randomBytes } from 'node:crypto'
import { CdnNetwork } from './cdn-network.ts'
const MiB = 1024 * 1024
const net = await CdnNetwork.start({ dir: '/tmp/sessbench/net', nodes: Array.from({ length: 4 }, () => ({ egress: 'unlimited' })) })
try {
  const url = net.managerUrl
  const size = Number(process.argv[2] ?? 256) * MiB
  const data = randomBytes(size)
  const auth = { authorization: `Bearer ${net.token}` }
  let t = performance.now()
  let r = await fetch(`${url}/api/publish`, { method: 'POST', headers: { ...auth, 'x-cdn-publish-name': 'a', 'x-cdn-replicas': '3' }, body: data })
  console.log('streamed', r.status, ((performance.now() - t) / 1000).toFixed(2), 's')
  const chunks = []
  for (let o = 0; o < size; o += MiB) chunks.push(data.subarray(o, o + MiB))
  for (const parallel of [4, 8]) {
    const fresh = chunks.map(c => { const x = Buffer.from(c); x[0] ^= parallel; return x })
    t = performance.now()
    const base = `${url}/api/names/b${parallel}/uploads`
    r = await fetch(base, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ chunks: fresh.map(c => ({ hash: createHash('sha256').update(c).digest('hex'), size: c.length })), file: 'b', type: 'application/octet-stream', replicas: 3 }) })
    const opened = await r.json() as any
    const queue = [...opened.missing]
    await Promise.all(Array.from({ length: parallel }, async () => {
      for (let i = queue.shift(); i != null; i = queue.shift()) {
        const p = await fetch(`${base}/${opened.upload}/chunks/${i}`, { method: 'PUT', headers: auth, body: fresh[i] })
        if (p.status !== 200) throw new Error(await p.text())
        await p.arrayBuffer()
      }
    }))
    r = await fetch(`${base}/${opened.upload}/commit`, { method: 'POST', headers: auth })
    console.log('session', parallel, r.status, ((performance.now() - t) / 1000).toFixed(2), 's')
  }
} finally {
  await net.stop()
}
