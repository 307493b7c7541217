/**
 * A capability link carries the content key, so a proxy can serve it with the
 * manager gone: the manifest and chunks come from nodes found through the DHT.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm } from 'node:fs/promises'
import { cdnJson, eventually, randomFile, startNetwork, tempDir } from './harness.ts'

test('a capability link is served with the manager stopped', async () => {
  const net = await startNetwork({ nodes: 3, extra: ['--chunk-size', '256KiB'] })
  const dir = await tempDir('offline')
  try {
    const file = await randomFile(dir, 'cap.bin', 3 * 1024 * 1024 + 77)
    const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
    const key = new URL(pub.link).searchParams.get('k')
    assert.ok(key, 'the printed link carries the key')
    process.kill(net.managerPid, 'SIGKILL')
    await eventually('the manager is gone', async () => await fetch(`${net.manager}/api/info`).then(() => false, () => true))
    // The proxy never fetched this content while the manager was up: everything comes from the DHT and the link.
    const res = await fetch(`${net.proxy}/c/${pub.id}?k=${key}`)
    assert.is(res.status, 200)
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(await readFile(file)))
    const range = await fetch(`${net.proxy}/c/${pub.id}?k=${key}`, { headers: { range: 'bytes=300000-300009' } })
    assert.is(range.status, 206)
    assert.ok(Buffer.from(await range.arrayBuffer()).equals((await readFile(file)).subarray(300000, 300010)))
    // Without the key there is nothing to decrypt with.
    const keyless = await fetch(`${net.proxy}/c/${pub.id}`)
    assert.ok(keyless.status >= 400)
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
