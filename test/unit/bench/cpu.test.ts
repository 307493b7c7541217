import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { CpuMeter, parseStatCpuMs, perMiB, summarizeCpu } from '../../../bench/cpu.ts'
import { cryptoFloorMsPerMiB } from '../../../bench/floors.ts'

test('a /proc stat line gives user + system time, even when the command name holds spaces and parentheses', () => {
  const line = '4242 (node (worker) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 11 0 9000 1000000 5000'
  // utime 250 + stime 50 ticks at 100 per second
  assert.is(parseStatCpuMs(line, 100), 3000)
  assert.throws(() => parseStatCpuMs('1 (x) S', 100), /unreadable/)
})

test('the meter charges a busy child its CPU time and an idle one next to nothing', async () => {
  const busy = spawn(process.execPath, ['-e', 'const end = Date.now() + 600; while (Date.now() < end) {} setTimeout(() => {}, 5000)'])
  const idle = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'])
  try {
    await new Promise(resolve => setTimeout(resolve, 50))
    const meter = new CpuMeter({ busy: [busy.pid!], idle: [idle.pid!] })
    await meter.start()
    // Long enough for the busy loop to finish however slowly the machine runs it.
    await new Promise(resolve => setTimeout(resolve, 1500))
    const ms = await meter.stop()
    assert.ok(ms.busy > 200, `busy child used ${ms.busy} ms`)
    assert.ok(ms.idle < ms.busy / 4, `idle child used ${ms.idle} ms against ${ms.busy} ms`)
    assert.ok(ms.client >= 0)
    assert.equal(perMiB({ busy: 512 }, 256 * 1024 * 1024), { busy: 2 })
  } finally {
    busy.kill()
    idle.kill()
    await Promise.all([once(busy, 'exit'), once(idle, 'exit')])
  }
})

test('per-role figures of several runs are summarised role by role', () => {
  const s = summarizeCpu([{ proxy: 6, node: 2 }, { proxy: 4, node: 3 }, { proxy: 5, node: 1 }])
  assert.is(s.proxy.median, 5)
  assert.is(s.node.max, 3)
})

test('the crypto floor is a positive, finite cost per MiB', () => {
  const floor = cryptoFloorMsPerMiB(4, 1)
  assert.ok(floor > 0 && Number.isFinite(floor), `floor ${floor}`)
})

test.run()
