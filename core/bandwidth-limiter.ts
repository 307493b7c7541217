import { setTimeout as sleep } from 'node:timers/promises'

/**
 * A token bucket shared by every request that draws on one budget (a node's
 * egress cap, the pool's repair share). Callers take before sending; a caller
 * that finds the bucket in debt waits for exactly its share, so concurrent
 * senders are served in arrival order without a timer per byte.
 */
export class BandwidthLimiter {
  readonly rate: number
  /** bytes that may go at once after a quiet spell */
  readonly burst: number
  private tokens: number
  private last: number
  private readonly now: () => number

  /**
   * @param rate bytes per second (Infinity: no limit)
   * @param burst bytes allowed at once (default rate/10, at least 64 KiB)
   * @param now clock in ms, injectable so the arithmetic can be tested without waiting
   */
  constructor (rate: number, burst?: number, now: () => number = () => performance.now()) {
    this.rate = rate
    this.burst = burst ?? Math.max(64 * 1024, rate / 10)
    this.tokens = this.burst
    this.now = now
    this.last = now()
  }

  get unlimited (): boolean {
    return !Number.isFinite(this.rate) || this.rate <= 0
  }

  /** Waits until `n` bytes may be sent. Aborting refunds the reservation. */
  async take (n: number, signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return
    signal?.throwIfAborted()
    const waitMs = this.reserve(n)
    if (waitMs === 0) return
    try {
      await sleep(waitMs, undefined, { signal })
    } catch (err) {
      this.tokens += n
      throw err
    }
  }

  /** Takes `n` tokens, going into debt if need be, and says how long the caller must wait (ms) for its share. */
  reserve (n: number): number {
    if (this.unlimited) return 0
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.rate / 1000)
    this.last = now
    this.tokens -= n
    return this.tokens >= 0 ? 0 : -this.tokens / this.rate * 1000
  }
}
