import { RateLimiter, createRateLimiter } from './rate-limit';

/** A hand-driven monotonic clock (ms). */
function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('rate limiter', () => {
  it('lets a burst through, then refuses with Retry-After until tokens refill', () => {
    const c = clock();
    const limiter = createRateLimiter({ ratePerSecond: 5, now: c.now });
    expect(limiter.burst).toBe(5);
    for (let i = 0; i < 5; i++) expect(limiter.take('token:0')).toEqual({ ok: true });
    expect(limiter.take('token:0')).toEqual({ ok: false, retryAfterSeconds: 1 });
    c.advance(199);
    expect(limiter.take('token:0').ok).toBe(false);
    c.advance(2);
    expect(limiter.take('token:0')).toEqual({ ok: true });
    expect(limiter.take('token:0').ok).toBe(false);
  });

  it('holds the rate over time: 5/s for 10 s lets about 50 through, not more', () => {
    const c = clock();
    const limiter = createRateLimiter({ ratePerSecond: 5, now: c.now });
    let ok = 0;
    for (let ms = 0; ms < 10_000; ms += 10) {
      if (limiter.take('k').ok) ok++;
      c.advance(10);
    }
    // The first burst (5) plus 5 per second for 10 seconds.
    expect(ok).toBeGreaterThanOrEqual(50);
    expect(ok).toBeLessThanOrEqual(55);
  });

  it('keeps keys apart', () => {
    const c = clock();
    const limiter = createRateLimiter({ ratePerSecond: 1, now: c.now });
    expect(limiter.take('address:10.0.0.1').ok).toBe(true);
    expect(limiter.take('address:10.0.0.1').ok).toBe(false);
    expect(limiter.take('address:10.0.0.2').ok).toBe(true);
    expect(limiter.take('token:0').ok).toBe(true);
  });

  it('says how many whole seconds to wait for slow rates', () => {
    const c = clock();
    const limiter = createRateLimiter({ ratePerSecond: 0.1, now: c.now });
    expect(limiter.burst).toBe(1);
    expect(limiter.take('k').ok).toBe(true);
    expect(limiter.take('k')).toEqual({ ok: false, retryAfterSeconds: 10 });
    c.advance(4_000);
    expect(limiter.take('k')).toEqual({ ok: false, retryAfterSeconds: 6 });
  });

  it('rate 0 means no limit', () => {
    const limiter = new RateLimiter({ ratePerSecond: 0 });
    for (let i = 0; i < 1_000; i++) expect(limiter.take(`k${i % 3}`).ok).toBe(true);
    expect(limiter.size).toBe(0);
  });

  it('forgets keys whose buckets refilled, as later calls pass them', () => {
    const c = clock();
    const limiter = createRateLimiter({ ratePerSecond: 10, now: c.now });
    for (let i = 0; i < 100; i++) limiter.take(`idle${i}`);
    expect(limiter.size).toBe(100);
    c.advance(1_000); // every bucket is full again: nothing to remember
    for (let i = 0; i < 30; i++) limiter.take('busy');
    expect(limiter.size).toBeLessThan(100);
    for (let i = 0; i < 100; i++) limiter.take('busy');
    expect(limiter.size).toBe(1);
  });

  it('never holds more than maxKeys; the least recently used goes first', () => {
    const c = clock();
    const limiter = createRateLimiter({ ratePerSecond: 1, maxKeys: 3, now: c.now });
    limiter.take('a');
    limiter.take('b');
    limiter.take('c');
    limiter.take('a'); // refused, and now the most recently used
    limiter.take('d'); // evicts b
    expect(limiter.size).toBe(3);
    expect(limiter.take('a').ok).toBe(false); // still remembered: still limited
    expect(limiter.take('b').ok).toBe(true); // forgotten: a fresh bucket
    for (let i = 0; i < 1_000; i++) limiter.take(`flood${i}`);
    expect(limiter.size).toBe(3);
  });

  it('refuses options that make no sense', () => {
    expect(() => createRateLimiter({ ratePerSecond: -1 })).toThrow(/ratePerSecond/);
    expect(() => createRateLimiter({ ratePerSecond: Number.NaN })).toThrow(/ratePerSecond/);
    expect(() => createRateLimiter({ ratePerSecond: 1, burst: 0.5 })).toThrow(/burst/);
    expect(() => createRateLimiter({ ratePerSecond: 1, maxKeys: 0 })).toThrow(/maxKeys/);
  });
});
