/** The testbed's side of testbed/agent.ts: requests out, answers matched by id. */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { TestbedError, type Testbed } from './netns.ts'

const AGENT = join(import.meta.dirname, 'agent.ts')

export interface GetResult { status: number, bytes: number, sha256: string | null, seconds: number, ttfbMs: number, headers: Record<string, string> }

export class Agent {
  private readonly proc: ChildProcess
  private next = 1
  private readonly waiting = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()

  constructor (bed: Testbed, host: string, logFile: string) {
    this.proc = bed.spawn(host, [process.execPath, AGENT], { logFile })
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line)
      const w = this.waiting.get(msg.id)
      if (w == null) return
      this.waiting.delete(msg.id)
      if (msg.error != null) w.reject(new TestbedError(String(msg.error)))
      else w.resolve(msg)
    })
    this.proc.once('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new TestbedError(`the agent on ${host} exited (${String(code)})`))
      this.waiting.clear()
    })
  }

  private async ask (req: Record<string, unknown>): Promise<any> {
    const id = this.next++
    return await new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      this.proc.stdin!.write(`${JSON.stringify({ id, ...req })}\n`)
    })
  }

  /** GET a JSON document; non-2xx answers are errors. */
  async json (url: string, token?: string): Promise<any> {
    const r = await this.ask({ op: 'json', url, token })
    if (r.status < 200 || r.status >= 300) throw new TestbedError(`GET ${url} answered ${String(r.status)}: ${JSON.stringify(r.body).slice(0, 300)}`)
    return r.body
  }

  /** GET a body (optionally a range), hashing it on the way. */
  async get (url: string, range?: string, opts: { timeoutMs?: number, hash?: boolean } = {}): Promise<GetResult> {
    return await this.ask({ op: 'get', url, range, ...opts })
  }

  close (): void {
    this.proc.stdin!.end()
  }
}
