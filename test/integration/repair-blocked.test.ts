/**
 * Three nodes, three copies, one node killed: the copies it held cannot go
 * anywhere. The manager says so (`cdn status`, a `repair-blocked` event, a
 * metric), and once a node joins the repair happens and the block is lifted.
 */
import { rm } from 'node:fs/promises'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cdn, cdnJson, eventually, randomFile, startNetwork, startNodeProcess, tempDir, type StartedNode } from './harness.ts'

const MiB = 1024 * 1024

test('repair that cannot happen is reported with its reason, and cleared when a node joins', async () => {
  const net = await startNetwork({ nodes: 3, extra: ['--heartbeat', '500ms', '--dead-after', '2s', '--reconcile', '500ms', '--chunk-size', '256KiB', '--replicas', '3'] })
  const dir = await tempDir('repair-blocked')
  let extra: StartedNode | undefined
  try {
    const file = await randomFile(dir, 'four-chunks.bin', 1 * MiB)
    await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
    process.kill(net.nodes[2].pid, 'SIGKILL')

    let status = ''
    await eventually('cdn status to say repair is blocked', async () => {
      const r = await cdn(['status', '--manager', net.manager, '--token-file', net.tokenFile])
      status = r.stdout
      return r.stdout.includes('repair blocked:')
    }, 60_000, 500)
    // Each of the four chunks lost one of its three copies.
    assert.match(status, /\n {2}4 chunks have 2 of 3 copies: 1 more node is needed\n?$/, status)
    const json = await cdnJson(['status', '--manager', net.manager, '--token-file', net.tokenFile])
    assert.equal(json.repairBlocked.map((b: any) => [b.reason, b.chunks, b.have, b.want, b.nodesNeeded]), [['too-few-nodes', 4, 2, 3, 1]])
    const events = await cdnJson(['events', '--manager', net.manager, '--token-file', net.tokenFile])
    const blocked = events.events.find((e: any) => e.kind === 'repair-blocked')
    assert.is(blocked?.detail?.reason, 'too-few-nodes')
    const metrics = await (await fetch(`${net.manager}/metrics`)).text()
    assert.match(metrics, /cdn_manager_repair_blocked_chunks\{[^}]*reason="too-few-nodes"[^}]*\} 4/)

    extra = await startNodeProcess(net, { label: 'rescue' })
    await eventually('the block to clear once the new node took the copies', async () => {
      const h = await (await fetch(`${net.manager}/api/health/replication`, { headers: { authorization: `Bearer ${net.token}` } })).json() as any
      return h.repairBlocked.length === 0 && h.belowBase === 0
    }, 60_000, 500)
    const after = await cdnJson(['events', '--manager', net.manager, '--token-file', net.tokenFile])
    assert.ok(after.events.some((e: any) => e.kind === 'repair-unblocked'))
    assert.not.match((await cdn(['status', '--manager', net.manager, '--token-file', net.tokenFile])).stdout, /repair blocked/)
  } finally {
    await extra?.stop()
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
