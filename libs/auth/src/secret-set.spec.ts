import crypto from 'node:crypto';
import { SecretSet } from './secret-set';

describe('SecretSet', () => {
  const set = new SecretSet(['first-token-0123456789', 'second-token-0123456789abcdef', 'third']);

  afterEach(() => jest.restoreAllMocks());

  it('finds which secret a candidate is, and -1 for anything else', () => {
    expect(set.size).toBe(3);
    expect(set.indexOf('first-token-0123456789')).toBe(0);
    expect(set.indexOf('second-token-0123456789abcdef')).toBe(1);
    expect(set.indexOf('third')).toBe(2);
    for (const other of ['', 'first-token-012345678', 'first-token-0123456789 ', 'FIRST-TOKEN-0123456789', 'thirds', 'x'.repeat(10_000)]) {
      expect(set.indexOf(other)).toBe(-1);
    }
    expect(new SecretSet([]).indexOf('anything')).toBe(-1);
  });

  it('compares fixed-length digests against every secret, whatever the candidate length and whether one matched early', () => {
    const compare = jest.spyOn(crypto, 'timingSafeEqual');
    for (const candidate of ['first-token-0123456789', 'a', 'y'.repeat(5_000)]) {
      compare.mockClear();
      set.indexOf(candidate);
      // Three secrets, three comparisons, even when the first one matched.
      expect(compare).toHaveBeenCalledTimes(3);
      for (const [a, b] of compare.mock.calls) {
        expect((a as Buffer).length).toBe(32);
        expect((b as Buffer).length).toBe(32);
      }
    }
  });
});
