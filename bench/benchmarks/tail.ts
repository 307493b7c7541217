/**
 * One bad node must not hold a download back. Four nodes at 25 MB/s all hold
 * one 256 MiB content; the download is timed with none slowed, with one node
 * capped at a tenth of the others' rate, and with one node frozen (SIGSTOP)
 * a quarter of the way through and thawed only after the download ends.
 *
 * Losing a node also loses its share of the pool's egress, so even a perfect
 * scheduler takes longer than the clean case: `idealVsClean` is that floor
 * (total egress ÷ remaining egress), beside the measured `vsClean`.
 */
import { join } from 'node:path'
import { TimeoutError } from '../../core/errors.ts'
import { CdnNetwork } from '../cdn-network.ts'
import { mbps, MiB, type Benchmark, type BenchContext, type TestFile } from '../context.ts'
import { download } from '../download.ts'
import { ratio, round, summarize, type Summary } from '../stats.ts'

const NODES = 4
const CAP_MBPS = 25
const SLOW_MBPS = 2.5
/** share of the body after which a node is frozen */
const STALL_AT = 0.25

type Case = 'clean' | 'slow' | 'stall'
/** in the order they run */
const CASES: Case[] = ['clean', 'stall', 'slow']

const CLEAN_LIMIT_MS = 600_000

interface Timed {
  seconds: number[]
  rates: number[]
  /** runs cut off at the time limit: their seconds are that limit, a lower bound */
  cutOff: number
}

async function timeDownloads (ctx: BenchContext, net: CdnNetwork, id: string, file: TestFile, which: Case, limitMs: number): Promise<Timed> {
  const part = CASES.indexOf(which)
  const out: Timed = { seconds: [], rates: [], cutOff: 0 }
  for (const run of ctx.repeat(part, CASES.length)) {
    await net.freshProxy(ctx.signal)
    // Rotating the frozen node keeps one node's luck from deciding the figure.
    const victim = net.nodes[(run - 1) % net.nodes.length]
    let frozen = false
    try {
      const r = await download(`${net.proxyUrl}/c/${id}`, {
        expectBytes: file.size,
        expectFingerprint: file.fingerprint,
        signal: ctx.signal,
        timeout: limitMs,
        onBytes: (total) => {
          if (which === 'stall' && !frozen && total >= file.size * STALL_AT) {
            frozen = true
            victim.proc.kill('SIGSTOP')
          }
        }
      })
      out.seconds.push(r.seconds)
      out.rates.push(r.mbps)
      ctx.log(`${which} run ${run}/${ctx.runs}: ${r.seconds.toFixed(2)} s (${mbps(r.mbps)})${frozen ? `, ${victim.role} frozen after ${STALL_AT * 100}%` : ''}`)
    } catch (err) {
      if (!(err instanceof TimeoutError) || ctx.signal.aborted) throw err
      out.cutOff++
      out.seconds.push(limitMs / 1000)
      out.rates.push(file.size / 1e6 / (limitMs / 1000))
      ctx.log(`${which} run ${run}/${ctx.runs}: NOT DONE after ${(limitMs / 1000).toFixed(0)} s (${err.message})`)
    } finally {
      if (frozen) victim.proc.kill('SIGCONT')
    }
  }
  return out
}

export const tail: Benchmark = {
  name: 'tail',
  about: `${NODES} nodes at ${CAP_MBPS} MB/s hold one 256 MiB content; download time with one node at ${SLOW_MBPS} MB/s, or frozen mid-transfer, against none slowed`,
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(256 * MiB))
    const results = new Map<Case, { seconds: Summary, mbps: Summary }>()
    // A bad case may never finish; past 4× the clean time it has failed its promise anyway.
    const limit = (): number => Math.max(30_000, 4 * 1000 * (results.get('clean')?.seconds.median ?? CLEAN_LIMIT_MS / 1000))
    const emit = (which: Case, r: Timed, idealVsClean: number): void => {
      const line = { seconds: summarize(r.seconds), mbps: summarize(r.rates) }
      results.set(which, line)
      const clean = results.get('clean')
      ctx.sink.emit({
        system: 'ours',
        case: which,
        nodes: NODES,
        size: file.size,
        egressCapMBps: CAP_MBPS,
        slowNodeMBps: which === 'slow' ? SLOW_MBPS : which === 'stall' ? 0 : null,
        replicas: NODES,
        ...line,
        vsClean: which === 'clean' ? 1 : ratio(line.seconds.median, clean?.seconds.median),
        idealVsClean: round(idealVsClean, 3),
        cutOffRuns: r.cutOff
      })
    }

    const even = await CdnNetwork.start({ dir: join(ctx.workDir, 'even'), nodes: Array.from({ length: NODES }, () => ({ egress: `${CAP_MBPS}MB/s` })) })
    try {
      const { id } = await even.publish(file.path, NODES, ctx.signal)
      emit('clean', await timeDownloads(ctx, even, id, file, 'clean', CLEAN_LIMIT_MS), 1)
      emit('stall', await timeDownloads(ctx, even, id, file, 'stall', limit()), NODES / (NODES - 1))
    } finally {
      await even.stop()
    }

    const uneven = await CdnNetwork.start({ dir: join(ctx.workDir, 'uneven'), nodes: Array.from({ length: NODES - 1 }, () => ({ egress: `${CAP_MBPS}MB/s` })) })
    try {
      await uneven.addNode({ egress: `${SLOW_MBPS}MB/s` })
      const { id } = await uneven.publish(file.path, NODES, ctx.signal)
      emit('slow', await timeDownloads(ctx, uneven, id, file, 'slow', limit()), NODES * CAP_MBPS / ((NODES - 1) * CAP_MBPS + SLOW_MBPS))
    } finally {
      await uneven.stop()
    }
  }
}
