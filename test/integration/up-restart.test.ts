/**
 * `cdn up` keeps its network whole: a node or the manager killed behind its
 * back comes back, with the same identity and at the same address, and the
 * pool carries on. With --no-restart it stays dead.
 */
import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CDN, eventually, poolNodes, tempDir } from './harness.ts'

async function up (dir: string, extra: string[] = []): Promise<{ summary: any, stderr: () => string, stop: () => Promise<void> }> {
  const proc = spawn(process.execPath, [CDN, 'up', '--json', '--nodes', '1', '--dir', dir, '--manager-port', '0', '--proxy-port', '0', '--heartbeat', '500ms', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`cdn up exited ${code}: ${stderr}`)) })
  })
  return {
    summary: JSON.parse(line),
    stderr: () => stderr,
    async stop () {
      if (proc.exitCode != null) return
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      await exited
    }
  }
}

test('a killed node and a killed manager are restarted, same identity, same address', async () => {
  const dir = await tempDir('up-restart')
  const net = await up(dir)
  try {
    const { manager, nodes } = net.summary
    const peerId = nodes[0].peerId
    process.kill(nodes[0].pid, 'SIGKILL')
    await eventually('cdn up to restart the node', async () => /node-0 restarted \(pid \d+\)/.test(net.stderr()), 60_000)
    assert.match(net.stderr(), /node-0 \(pid \d+\) exited: SIGKILL; restarting in 1 s/)
    await eventually('the same node alive again', async () => {
      const list = await poolNodes(manager, net.summary.adminToken)
      return list.length === 1 && list[0].peerId === peerId && list[0].state === 'alive'
    }, 60_000)

    process.kill(net.summary.managerPid, 'SIGKILL')
    await eventually('cdn up to restart the manager', async () => /manager restarted \(pid \d+\)/.test(net.stderr()), 60_000)
    // Same HTTP address (it was started on "any port") and the node finds it at its old libp2p address.
    const info = await (await fetch(`${manager}/api/info`)).json() as any
    assert.equal(info.multiaddrs, [net.summary.managerMultiaddr])
    await eventually('the node reporting to the restarted manager', async () => (await poolNodes(manager, net.summary.adminToken)).some(n => n.peerId === peerId && n.state === 'alive'), 60_000)
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('with --no-restart a dead child stays dead, and cdn up says so', async () => {
  const dir = await tempDir('up-no-restart')
  const net = await up(dir, ['--no-restart'])
  try {
    process.kill(net.summary.nodes[0].pid, 'SIGKILL')
    await eventually('cdn up to report the death', async () => net.stderr().includes('not restarted (--no-restart)'), 30_000)
    assert.not.match(net.stderr(), /restarted \(pid/)
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
