import { checkPhidEntries, createGrant } from './grant';

describe('grant', () => {
  const grant = createGrant({ sub: 'alice', instance: 'acme', expiresAt: 1_000, phids: ['PHID-USER-alice', 'PHID-PROJ-*', 'PHID-CONP-abc*'] });

  it('carries the claims it was made from', () => {
    expect(grant).toMatchObject({ sub: 'alice', instance: 'acme', expiresAt: 1_000, allowsAll: false });
    expect(createGrant({ expiresAt: 5, phids: [] })).toMatchObject({ sub: undefined, instance: undefined });
  });

  it.each([
    ['PHID-USER-alice', true],
    ['PHID-USER-bob', false],
    ['PHID-USER-alic', false],
    ['PHID-USER-alicex', false],
    ['PHID-PROJ-1234', true],
    ['PHID-PROJ-', true],
    ['PHID-PROJ', false],
    ['PHID-CONP-abcdef', true],
    ['PHID-CONP-ab', false],
    ['', false],
    // Names that a plain object would find on its prototype (Aphlict's `in` defect).
    ['constructor', false],
    ['__proto__', false],
  ])('allows %j: %s', (phid, expected) => {
    expect(grant.allows(phid)).toBe(expected);
  });

  it('"*" alone allows every PHID', () => {
    const all = createGrant({ expiresAt: 1, phids: ['*'] });
    expect(all.allowsAll).toBe(true);
    for (const phid of ['PHID-USER-x', '', 'anything']) expect(all.allows(phid)).toBe(true);
  });

  it('an empty list allows nothing', () => {
    const none = createGrant({ expiresAt: 1, phids: [] });
    expect(none.allows('PHID-USER-x')).toBe(false);
  });

  it('filter splits a subscribe into the allowed and the refused, each in order', () => {
    expect(grant.filter(['PHID-PROJ-1', 'PHID-USER-bob', 'PHID-USER-alice', 'PHID-TASK-1'])).toEqual({
      allowed: ['PHID-PROJ-1', 'PHID-USER-alice'],
      refused: ['PHID-USER-bob', 'PHID-TASK-1'],
    });
  });

  it('answers for thousands of exact entries and prefixes (correctness at size; speed is in bench/, not here)', () => {
    const exact = Array.from({ length: 5_000 }, (_, i) => `PHID-USER-${String(i).padStart(20, '0')}`);
    const prefixes = Array.from({ length: 2_000 }, (_, i) => `PHID-P${String(i).padStart(3, '0')}-*`);
    const big = createGrant({ expiresAt: 1, phids: [...exact, ...prefixes] });
    expect(big.allows(exact[4_321])).toBe(true);
    expect(big.allows('PHID-USER-99999999999999999999')).toBe(false);
    expect(big.allows('PHID-P1999-zzz')).toBe(true);
    expect(big.allows('PHID-P2000-zzz')).toBe(false);
  });

  describe('checkPhidEntries', () => {
    it('accepts lists of PHIDs and prefixes', () => {
      expect(checkPhidEntries([])).toBeUndefined();
      expect(checkPhidEntries(['PHID-USER-a', 'PHID-PROJ-*', '*'])).toBeUndefined();
    });

    it.each([
      ['not a list', 'PHID-USER-a', /must be a list/],
      ['missing', undefined, /must be a list/],
      ['an object', { 0: 'PHID-USER-a' }, /must be a list/],
      ['a number entry', ['PHID-USER-a', 7], /"phids"\[1\] must be a non-empty string/],
      ['an empty entry', [''], /"phids"\[0\] must be a non-empty string/],
      ['a star inside', ['PHID-*-x'], /only at its end/],
      ['two stars', ['PHID-**'], /only at its end/],
      ['an entry too long', ['P'.repeat(257)], /longer than 256/],
      ['too many entries', Array.from({ length: 1_001 }, (_, i) => `P${i}`), /more than 1000/],
    ])('refuses %s', (_what, value, message) => {
      expect(checkPhidEntries(value)).toMatch(message);
    });

    it('takes other limits', () => {
      expect(checkPhidEntries(['a', 'b', 'c'], { maxPhids: 2, maxPhidLength: 10 })).toMatch(/more than 2/);
      expect(checkPhidEntries(['abc'], { maxPhids: 2, maxPhidLength: 2 })).toMatch(/longer than 2/);
    });
  });
});
