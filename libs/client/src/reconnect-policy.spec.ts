import { ReconnectPolicy } from './reconnect-policy';
import { RecentIds } from './recent-ids';

describe('ReconnectPolicy', () => {
  it("follows JX.Aphlict without jitter: 0 after an open connection, then 2 s doubling to 5 minutes", () => {
    const policy = new ReconnectPolicy({ jitter: 0 });
    expect(policy.next(true)).toBe(0);
    const delays = Array.from({ length: 10 }, () => policy.next(false));
    expect(delays).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]);
    policy.opened();
    expect(policy.next(false)).toBe(2_000);
    expect(policy.next(true)).toBe(0);
    expect(policy.next(false)).toBe(2_000);
  });

  it('takes up to `jitter` of each delay off at random, never adding to it', () => {
    let r = 0;
    const policy = new ReconnectPolicy({ jitter: 0.5 }, () => r);
    r = 0.999;
    expect(policy.next(false)).toBe(1_001);
    r = 0;
    expect(policy.next(false)).toBe(4_000);
  });

  it('gives up after maxAttempts failures in a row, and can skip the immediate retry', () => {
    const policy = new ReconnectPolicy({ jitter: 0, maxAttempts: 2, immediateAfterOpen: false });
    expect(policy.next(true)).toBe(2_000);
    expect(policy.next(false)).toBe(4_000);
    expect(policy.next(false)).toBeNull();
  });

  it('rejects contradictory options', () => {
    expect(() => new ReconnectPolicy({ initialDelayMs: 10, maxDelayMs: 5 })).toThrow(/maxDelayMs/);
    expect(() => new ReconnectPolicy({ jitter: 2 })).toThrow(/jitter/);
    expect(() => new ReconnectPolicy({ factor: 0.5 })).toThrow(/factor/);
  });
});

describe('RecentIds', () => {
  it('reports duplicates and forgets the oldest past its bound', () => {
    const ids = new RecentIds(3);
    expect(['a', 'b', 'c'].map((id) => ids.add(id))).toEqual([true, true, true]);
    expect(ids.add('a')).toBe(false);
    expect(ids.add('d')).toBe(true);
    expect(ids.size).toBe(3);
    expect(ids.add('a')).toBe(true); // forgotten: the oldest went first
    expect(ids.add('d')).toBe(false);
  });
});
