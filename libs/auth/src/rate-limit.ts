/**
 * Publishes per second per key (an admin token, or a source address): one token bucket per
 * key, refilled at `ratePerSecond` up to `burst`. Memory stays bounded without timers: a
 * bucket that has refilled to the brim holds nothing a new bucket would not, so idle keys
 * are dropped as later calls pass them, and past `maxKeys` the least recently used key goes
 * (it then starts again with a full bucket: the price of the bound).
 */

export interface RateLimiterOptions {
  /** Tokens added per second; 0: no limit (every take() is ok). Fractions allowed. */
  ratePerSecond: number;
  /** Bucket size: how many takes may come at once after a quiet spell. Default max(1, ratePerSecond). */
  burst?: number;
  /** Most keys remembered at once (default 10000). */
  maxKeys?: number;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

export const DEFAULT_RATE_LIMIT_MAX_KEYS = 10_000;

/** How many idle keys one take() looks at for eviction; keeps every call O(1). */
const EVICT_PER_CALL = 4;

export class RateLimiter {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly maxKeys: number;
  private readonly now: () => number;
  /** Insertion order is recency order: a key is moved to the end on every take(). */
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    const { ratePerSecond } = options;
    if (!(ratePerSecond >= 0) || !Number.isFinite(ratePerSecond)) throw new RangeError('ratePerSecond must be a finite number >= 0');
    this.ratePerSecond = ratePerSecond;
    this.burst = options.burst ?? Math.max(1, ratePerSecond);
    if (!(this.burst >= 1) || !Number.isFinite(this.burst)) throw new RangeError('burst must be a finite number >= 1');
    this.maxKeys = options.maxKeys ?? DEFAULT_RATE_LIMIT_MAX_KEYS;
    if (!Number.isInteger(this.maxKeys) || this.maxKeys < 1) throw new RangeError('maxKeys must be a whole number >= 1');
    this.now = options.now ?? (() => performance.now());
  }

  /** Keys remembered now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token for `key`: ok, or how many whole seconds until one is there (Retry-After). */
  take(key: string): RateDecision {
    if (this.ratePerSecond === 0) return { ok: true };
    const now = this.now();
    this.evictIdle(now);
    const bucket = this.buckets.get(key);
    let tokens = this.burst;
    if (bucket) {
      tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1_000) * this.ratePerSecond);
      this.buckets.delete(key);
    } else if (this.buckets.size >= this.maxKeys) {
      this.buckets.delete(this.buckets.keys().next().value!);
    }
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      return { ok: true };
    }
    this.buckets.set(key, { tokens, at: now });
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.ratePerSecond)) };
  }

  /** Drops the least recently used keys whose buckets have refilled: forgetting them changes nothing. */
  private evictIdle(now: number): void {
    let looked = 0;
    for (const [key, bucket] of this.buckets) {
      if (looked++ >= EVICT_PER_CALL) return;
      if (bucket.tokens + ((now - bucket.at) / 1_000) * this.ratePerSecond < this.burst) return;
      this.buckets.delete(key);
    }
  }
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  return new RateLimiter(options);
}
