/**
 * Runs every test file in its own Node process (integration tests start real
 * daemons; isolating files keeps a crash or a leaked handle in one from
 * poisoning the rest), then prints the one summary line CI reads:
 * `N passed, N failed`.
 *
 *   node test/run.ts [filter…]   run the files whose path contains a filter
 */
import { spawn } from 'node:child_process'
import { readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'

const root = join(import.meta.dirname, '..')
const filters = process.argv.slice(2)
const FILE_TIMEOUT_MS = Number(process.env.CDN_TEST_FILE_TIMEOUT_MS ?? 300_000)

async function listTests (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...await listTests(p))
    else if (entry.name.endsWith('.test.ts')) out.push(p)
  }
  return out.sort()
}

interface Outcome { passed: number, failed: number, skipped: number }

function strip (text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, '')
}

async function runFile (file: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); process.stdout.write(d) })
    child.stderr.on('data', (d: Buffer) => { process.stderr.write(d) })
    const timer = setTimeout(() => {
      process.stdout.write(`\n${relative(root, file)}: killed after ${FILE_TIMEOUT_MS} ms\n`)
      child.kill('SIGKILL')
    }, FILE_TIMEOUT_MS)
    child.on('close', (code) => {
      clearTimeout(timer)
      const text = strip(out)
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN)
      const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN)
      const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0)
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        // A file that died before uvu could summarise counts as one failure.
        resolve({ passed: 0, failed: 1, skipped: 0 })
        return
      }
      const failed = Math.max(total - passed - skipped, code === 0 ? 0 : 1)
      resolve({ passed, failed, skipped })
    })
  })
}

const files = (await listTests(join(root, 'test'))).filter(f => filters.length === 0 || filters.some(x => f.includes(x)))
const sum: Outcome = { passed: 0, failed: 0, skipped: 0 }
const failedFiles: string[] = []
for (const file of files) {
  process.stdout.write(`\n# ${relative(root, file)}\n`)
  const r = await runFile(file)
  sum.passed += r.passed
  sum.failed += r.failed
  sum.skipped += r.skipped
  if (r.failed > 0) failedFiles.push(relative(root, file))
}
if (failedFiles.length > 0) process.stdout.write(`\nfailing files: ${failedFiles.join(', ')}\n`)
if (sum.skipped > 0) process.stdout.write(`${sum.skipped} skipped\n`)
process.stdout.write(`${sum.passed} passed, ${sum.failed} failed\n`)
process.exitCode = sum.failed > 0 ? 1 : 0
