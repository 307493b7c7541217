/**
 * A second, lighter client for the fastest servers: curl writes to /dev/null
 * in C, so where Node's own HTTP client is the bottleneck (≈ 0.5 GB/s here)
 * curl shows what the server itself can do. Optional: absent curl, no figure.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { UpstreamError } from '../core/errors.ts'

const run = promisify(execFile)

export async function curlAvailable (): Promise<boolean> {
  try {
    await run('curl', ['--version'], { timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

/** MB/s of one GET through curl, failing unless it answers 200 with `expectBytes`. */
export async function curlMbps (url: string, expectBytes: number, signal?: AbortSignal): Promise<number> {
  const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { signal, timeout: 600_000 })
  const [code, size, seconds] = stdout.trim().split(' ').map(Number)
  if (code !== 200 || size !== expectBytes) throw new UpstreamError(`curl ${url}: status ${code}, ${size} of ${expectBytes} bytes`)
  return size / 1e6 / seconds
}
