/**
 * What each role's work costs when done plainly, measured in the same run as
 * the role itself so that both see the same machine:
 * - the crypto floor: SHA-256 and AES-256-GCM decryption of 1 MiB chunks in
 *   one process, which is all the proxy must do with each byte;
 * - the file-server floor: a plain `node:http` server piping a file from disk
 *   (bench/origin-server.ts), which is all a node must do with each byte.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { startChild } from './child.ts'
import { MiB, type BenchContext, type TestFile } from './context.ts'
import { CpuMeter } from './cpu.ts'
import { download } from './download.ts'
import { round } from './stats.ts'

const ORIGIN = join(import.meta.dirname, 'origin-server.ts')

/** CPU ms per MiB to hash and decrypt `mib` MiB of 1 MiB chunks, the best of `tries`. */
export function cryptoFloorMsPerMiB (mib = 64, tries = 3): number {
  const key = randomBytes(32)
  const chunks = Array.from({ length: 8 }, (_, i) => {
    const nonce = Buffer.alloc(12)
    nonce.writeUInt32BE(i, 8)
    const cipher = createCipheriv('aes-256-gcm', key, nonce)
    const body = Buffer.concat([cipher.update(randomBytes(MiB)), cipher.final()])
    return { nonce, body, tag: cipher.getAuthTag() }
  })
  let best = Infinity
  for (let t = 0; t < tries; t++) {
    const before = process.cpuUsage()
    for (let i = 0; i < mib; i++) {
      const c = chunks[i % chunks.length]
      createHash('sha256').update(c.body).update(c.tag).digest()
      const decipher = createDecipheriv('aes-256-gcm', key, c.nonce)
      decipher.setAuthTag(c.tag)
      decipher.update(c.body)
      decipher.final()
    }
    const used = process.cpuUsage(before)
    best = Math.min(best, (used.user + used.system) / 1000 / mib)
  }
  return round(best, 3)
}

export interface FileServerFloor {
  msPerMiB: number
  mbps: number
}

/** CPU ms per MiB of the plain file server serving `file` once (after a warming read), the best of `tries`. */
export async function fileServerFloor (ctx: BenchContext, file: TestFile, tries = 2): Promise<FileServerFloor> {
  const server = await startChild({ role: 'floor-origin', args: [ORIGIN, '--file', file.path], logFile: join(ctx.workDir, 'logs', 'floor-origin.log') })
  try {
    const url = `${String(server.info.http)}/file`
    await download(url, { expectBytes: file.size, signal: ctx.signal })
    let best: FileServerFloor = { msPerMiB: Infinity, mbps: 0 }
    for (let t = 0; t < tries; t++) {
      const meter = new CpuMeter({ server: [server.pid] })
      await meter.start()
      const r = await download(url, { expectBytes: file.size, signal: ctx.signal })
      const ms = await meter.stop()
      const msPerMiB = round(ms.server / (file.size / MiB), 3)
      if (msPerMiB < best.msPerMiB) best = { msPerMiB, mbps: r.mbps }
    }
    return best
  } finally {
    await server.stop()
  }
}
