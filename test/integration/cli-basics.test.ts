/**
 * The CLI as a person meets it: a launcher that brings its own Node, a
 * version, and failures that are one line on stderr, not log lines and
 * stack traces.
 */
import { spawn } from 'node:child_process'
import { mkdir, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cdn, tempDir } from './harness.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const UNKNOWN = 'bagaaierayrxdarzvi7pldewqkc7d7u6ggkri6py3uhtud5pfujibejzkksda'

async function run (argv: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    proc.on('close', (code) => { resolve({ code, stdout, stderr }) })
  })
}

test('the launcher on PATH runs the CLI on the pinned Node, through the symlink npm link makes', async () => {
  const dir = await tempDir('launcher')
  try {
    await mkdir(join(dir, 'bin'))
    await symlink(join(ROOT, 'bin', 'cdn'), join(dir, 'bin', 'cdn'))
    // A PATH without the pinned Node: only the system's tools.
    const r = await run([join(dir, 'bin', 'cdn'), '--version'], { PATH: '/usr/bin:/bin' })
    assert.is(r.code, 0, r.stderr)
    assert.match(r.stdout, /^\d+\.\d+\.\d+ \(node v24\.\d+\.\d+\)\n$/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('get into a missing directory, or of an unknown content, fails in one line', async () => {
  const missing = await cdn(['get', UNKNOWN, '-o', '/nonexistent-dir/x/y.bin'])
  assert.is(missing.code, 1)
  assert.is(missing.stderr, 'cdn: cannot write /nonexistent-dir/x/y.bin: the directory /nonexistent-dir/x does not exist [ERR_BAD_INPUT]\n')

  const dir = await tempDir('cli-basics')
  const manager = spawn(process.execPath, [join(ROOT, 'cli', 'cdn.ts'), 'manager', 'start', '--dir', join(dir, 'm'), '--http-port', '0', '--p2p-port', '0', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] })
  try {
    const info = JSON.parse(await new Promise<string>((resolve, reject) => {
      createInterface({ input: manager.stdout }).once('line', resolve)
      manager.once('exit', (code) => { reject(new Error(`manager exited ${code}`)) })
    }))
    // No CDN_LOG_LEVEL: the test runner may set one, a person usually does not.
    const env = { ...process.env }
    delete env.CDN_LOG_LEVEL
    const r = await run([process.execPath, join(ROOT, 'cli', 'cdn.ts'), 'get', UNKNOWN, '-o', join(dir, 'out.bin'), '--manager', info.http], env as Record<string, string>)
    assert.is(r.code, 1)
    assert.is(r.stderr.split('\n').filter(l => l !== '').length, 1, r.stderr)
    assert.match(r.stderr, /^cdn: .+ \[ERR_[A-Z_]+\]\n$/)
    assert.not.match(r.stderr, /\n\s+at /)
  } finally {
    manager.kill('SIGTERM')
    await new Promise(resolve => manager.once('exit', resolve))
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
