import { SeenIds } from './seen-ids';

describe('SeenIds', () => {
  it('says an id is new once per instance', () => {
    const seen = new SeenIds({ ttlMs: 1_000, maxEntries: 100 });
    expect(seen.markNew('default', 'a')).toBe(true);
    expect(seen.markNew('default', 'a')).toBe(false);
    expect(seen.markNew('acme', 'a')).toBe(true);
    expect(seen.has('default', 'a')).toBe(true);
    expect(seen.has('default', 'b')).toBe(false);
    expect(seen.size).toBe(2);
  });

  it('does not confuse instance and id boundaries', () => {
    const seen = new SeenIds({ ttlMs: 1_000, maxEntries: 100 });
    expect(seen.markNew('a', 'bc')).toBe(true);
    expect(seen.markNew('ab', 'c')).toBe(true);
  });

  it('forgets ids after the ttl, with the clock it was given', () => {
    let t = 0;
    const seen = new SeenIds({ ttlMs: 1_000, maxEntries: 100, now: () => t });
    seen.markNew('i', 'a');
    t = 500;
    seen.markNew('i', 'b');
    t = 1_000;
    expect(seen.markNew('i', 'a')).toBe(false); // exactly ttl old: still remembered
    t = 1_001;
    expect(seen.markNew('i', 'a')).toBe(true);
    expect(seen.markNew('i', 'b')).toBe(false);
  });

  it('keeps at most maxEntries, forgetting the oldest first', () => {
    const seen = new SeenIds({ ttlMs: 60_000, maxEntries: 3, now: () => 0 });
    for (const id of ['a', 'b', 'c', 'd']) expect(seen.markNew('i', id)).toBe(true);
    expect(seen.size).toBe(3);
    expect(seen.has('i', 'a')).toBe(false);
    expect(seen.markNew('i', 'd')).toBe(false);
    expect(seen.markNew('i', 'b')).toBe(false);
  });
});
