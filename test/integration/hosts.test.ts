/**
 * A manager and a node started the way an operator on two machines would:
 * the manager prints the command that joins a node, that very command joins
 * one, and a restarted manager is found again at the same libp2p address.
 * (The namespace testbed, `npm run testbed`, does the same across real
 * network hosts.)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CDN, cdn, eventually, poolNodes, tempDir } from './harness.ts'

const NODE = process.execPath

interface Daemon { proc: ChildProcess, info: any, stop (): Promise<void> }

async function daemon (argv: string[], env: Record<string, string> = {}): Promise<Daemon> {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`${argv.slice(1, 4).join(' ')} exited ${code} before it was ready`)) })
  })
  return {
    proc,
    info: JSON.parse(line),
    async stop () {
      if (proc.exitCode != null || proc.signalCode != null) return
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      await exited
    }
  }
}

test('the printed join command joins a node, and a restarted manager is found at the same address', async () => {
  const dir = await tempDir('hosts')
  const managerDir = join(dir, 'manager')
  const running: Daemon[] = []
  try {
    let manager = await daemon([NODE, CDN, 'manager', 'start', '--dir', managerDir, '--http-port', '0', '--p2p-port', '0', '--json'])
    running.push(manager)
    const token = (await readFile(join(managerDir, 'join.token'), 'utf8')).trim()
    const admin = (await readFile(join(managerDir, 'admin.token'), 'utf8')).trim()

    const shown = await cdn(['manager', 'join-command', '--dir', managerDir, '--json'])
    assert.is(shown.code, 0, shown.stderr)
    const join_ = JSON.parse(shown.stdout)
    assert.is(join_.manager, manager.info.multiaddrs[0])
    assert.ok(!shown.stdout.includes(token), 'the join command never carries the token itself')
    assert.match(join_.command, /^CDN_JOIN_TOKEN="\$\(cat .*join\.token\)" cdn node start --manager \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+ --data \.\/cdn-node$/)

    // The very command, run by a shell, with our Node standing in for the `cdn` launcher.
    const command = `${join_.command.replace(' cdn node start', ` exec '${NODE}' '${CDN}' node start`).replace('./cdn-node', `'${join(dir, 'node')}'`)} --http-port 0 --p2p-port 0 --json`
    const node = await daemon(['/bin/sh', '-c', command])
    running.push(node)
    assert.ok(!String(node.info.http).includes('0.0.0.0'))
    await eventually('the node joined', async () => (await poolNodes(manager.info.http, admin)).some(n => n.peerId === node.info.peerId && n.state === 'alive'))

    // Restarted without any port flag: the ports come from the data directory.
    const before = manager.info
    await manager.stop()
    running.splice(running.indexOf(manager), 1)
    manager = await daemon([NODE, CDN, 'manager', 'start', '--dir', managerDir, '--json'])
    running.push(manager)
    assert.equal(manager.info.multiaddrs, before.multiaddrs)
    assert.is(manager.info.http, before.http)
    const restartedAt = Date.now()
    // The node keeps calling the address it was given; the new process answers there.
    await eventually('the node reported to the restarted manager', async () => (await poolNodes(manager.info.http, admin)).some(n => n.peerId === node.info.peerId && n.state === 'alive' && Date.parse(n.lastSeen) >= restartedAt), 60_000)

    // A second manager on the same port is told which flag moves it, in one line.
    const port = new URL(manager.info.http).port
    const clash = await cdn(['manager', 'start', '--dir', join(dir, 'other'), '--http-port', port, '--p2p-port', '0'], { CDN_LOG_LEVEL: 'silent' })
    assert.is(clash.code, 1)
    assert.is(clash.stderr.trim(), `cdn: HTTP port ${port} on 127.0.0.1 is already in use: choose another with --http-port [ERR_PORT_IN_USE]`)
  } finally {
    for (const d of running.reverse()) await d.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
