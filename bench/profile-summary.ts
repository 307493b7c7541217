/**
 * Where the time goes: sums the self time of V8 CPU profiles (`node
 * --cpu-prof`, e.g. from `BENCH_CPU_PROF=D npm run bench -- aggregate`,
 * which profiles each role into D/<role>/) by function and by package,
 * busiest first.
 *
 *   node bench/profile-summary.ts FILE.cpuprofile… [--top 25]
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
}

export interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface Share { name: string, ms: number, share: number }

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Which package, Node internal or project folder a frame's code lives in. */
export function owner (url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)'
  if (url.startsWith('node:')) return 'node internals'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  const path = url.startsWith('file:') ? fileURLToPath(url) : url
  const local = path.startsWith(ROOT) ? path.slice(ROOT.length) : path
  return local.split('/').slice(0, -1).join('/') || local
}

/** Self time by function and by owner, from one or more profiles. */
export function summarizeProfiles (profiles: CpuProfile[]): { totalMs: number, byFunction: Share[], byOwner: Share[] } {
  const fn = new Map<string, number>()
  const own = new Map<string, number>()
  let total = 0
  for (const p of profiles) {
    const byId = new Map(p.nodes.map(n => [n.id, n]))
    for (let i = 0; i < p.samples.length; i++) {
      const node = byId.get(p.samples[i])
      const ms = (p.timeDeltas[i] ?? 0) / 1000
      if (node == null) continue
      const { functionName, url, lineNumber } = node.callFrame
      if (functionName === '(idle)') continue
      total += ms
      const file = url === '' ? '' : ` ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(bench|proxy|node|manager|core|cli)\//, '$1/')}:${lineNumber + 1}`
      const key = `${functionName === '' ? '(anonymous)' : functionName}${file}`
      fn.set(key, (fn.get(key) ?? 0) + ms)
      const o = owner(url, functionName)
      own.set(o, (own.get(o) ?? 0) + ms)
    }
  }
  const sorted = (m: Map<string, number>): Share[] => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ name, ms, share: total === 0 ? 0 : ms / total }))
  return { totalMs: total, byFunction: sorted(fn), byOwner: sorted(own) }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } })
  const top = Number(values.top)
  const profiles = await Promise.all(positionals.map(async f => JSON.parse(await readFile(f, 'utf8')) as CpuProfile))
  const s = summarizeProfiles(profiles)
  const line = (x: Share): string => `${(x.share * 100).toFixed(1).padStart(5)} %  ${x.ms.toFixed(0).padStart(7)} ms  ${x.name}`
  process.stdout.write(`busy CPU: ${s.totalMs.toFixed(0)} ms in ${profiles.length} profile(s)\n\nby package or folder:\n`)
  process.stdout.write(`${s.byOwner.slice(0, top).map(line).join('\n')}\n\nby function (self time):\n`)
  process.stdout.write(`${s.byFunction.slice(0, top).map(line).join('\n')}\n`)
}
