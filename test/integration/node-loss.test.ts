/**
 * A holder dies in the middle of a download: the get must finish byte-identical
 * from the surviving copies. Nodes are egress-capped so the download lasts long
 * enough to be interrupted.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { CDN, cdnJson, eventually, fileSize, randomFile, sha256File, startNetwork, tempDir } from './harness.ts'

const MiB = 1024 * 1024

test('with R=2, a get survives kill -9 of a holder in the middle', async () => {
  const net = await startNetwork({ nodes: 4, extra: ['--node-egress', '8MB/s'] })
  const dir = await tempDir('kill')
  try {
    const file = await randomFile(dir, 'kill.bin', 50 * MiB)
    const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile, '--replicas', '2'])
    const out = join(dir, 'kill.out')
    const get = spawn(process.execPath, [CDN, 'get', pub.id, '-o', out, '--manager', net.manager, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    get.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const done = new Promise<number | null>(resolve => get.on('close', resolve))
    const part = `${out}.part-${get.pid}`
    await eventually('the get is under way', async () => await fileSize(part) > 0 || get.exitCode != null, 60_000, 5)
    assert.is(get.exitCode, null, 'the get was still running when the node was killed')
    process.kill(net.nodes[0].pid, 'SIGKILL')
    assert.is(await done, 0, stderr)
    assert.is(await sha256File(out), await sha256File(file))
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
