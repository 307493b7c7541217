/**
 * Token buckets per client key (an address): each key may spend `burst`
 * at once and earns `ratePerSecond` back. Memory is bounded: past
 * `maxKeys`, the least recently used keys are forgotten (they come back full,
 * which costs at most one burst each).
 */
import { LRUCache } from 'lru-cache'
import { CdnError } from '../../core/errors.ts'

export class RateLimitedError extends CdnError {
  constructor (message = 'too many requests', options?: ErrorOptions) { super(message, 'ERR_RATE_LIMITED', 429, options) }
}

export interface TokenBucketsInit {
  /** tokens earned per second */
  ratePerSecond: number
  /** most tokens a key can hold (and spend at once) */
  burst: number
  /** keys remembered at most (default 10,000) */
  maxKeys?: number
  /** ms clock (default performance.now) */
  now?: () => number
}

interface Bucket { tokens: number, at: number }

export class TokenBuckets {
  private readonly rate: number
  private readonly burst: number
  private readonly now: () => number
  private readonly buckets: LRUCache<string, Bucket>

  constructor (init: TokenBucketsInit) {
    if (!(init.ratePerSecond > 0) || !(init.burst >= 1)) throw new RangeError('a token bucket needs a positive rate and a burst of at least 1')
    this.rate = init.ratePerSecond
    this.burst = init.burst
    this.buckets = new LRUCache({ max: init.maxKeys ?? 10_000 })
    this.now = init.now ?? (() => performance.now())
  }

  /** Spends one token of `key`; false when it has none left. */
  take (key: string): boolean {
    const now = this.now()
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / 1000 * this.rate)
    b.at = now
    this.buckets.set(key, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** Seconds until `key` has a token again (0 when it has one). */
  retryAfter (key: string): number {
    const b = this.buckets.peek(key)
    if (b == null) return 0
    const tokens = Math.min(this.burst, b.tokens + (this.now() - b.at) / 1000 * this.rate)
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.rate)
  }
}
