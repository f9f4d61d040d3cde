import type { Envelope } from '@tidings/protocol';
import { MemoryHistory } from './memory-history';

function envelope(instance: string, id: string, acceptedAt: number, subscribers = ['P']): Envelope {
  return { id, instance, subscribers, frame: JSON.stringify({ id, subscribers }), acceptedAt };
}

class FakeClock {
  constructor(public t = 1_000_000) {}
  now = (): number => this.t;
}

describe('MemoryHistory', () => {
  it('keeps messages per instance, oldest first', async () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ now: clock.now });
    await h.append(envelope('acme', 'a1', clock.t));
    clock.t += 10;
    await h.append(envelope('other', 'o1', clock.t));
    clock.t += 10;
    await h.append(envelope('acme', 'a2', clock.t));
    expect((await h.recent('acme', 60_000)).map((e) => e.id)).toEqual(['a1', 'a2']);
    expect((await h.recent('other', 60_000)).map((e) => e.id)).toEqual(['o1']);
    expect(await h.recent('nobody', 60_000)).toEqual([]);
  });

  it('entriesSince() returns messages accepted at or after the given time', async () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ now: clock.now });
    for (let i = 0; i < 5; i++) h.add(envelope('i', `m${i}`, clock.t + i * 100));
    clock.t += 400;
    expect(h.entriesSince('i', clock.t - 200).map((e) => e.id)).toEqual(['m2', 'm3', 'm4']);
    expect(h.entriesSince('i', clock.t + 1)).toEqual([]);
  });

  it('bounds the count per instance: the oldest go first, other instances keep theirs', async () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ maxMessages: 3, now: clock.now });
    for (let i = 0; i < 5; i++) h.add(envelope('busy', `b${i}`, clock.t));
    h.add(envelope('quiet', 'q0', clock.t));
    expect(h.entriesSince('busy', 0).map((e) => e.id)).toEqual(['b2', 'b3', 'b4']);
    expect(h.entriesSince('quiet', 0).map((e) => e.id)).toEqual(['q0']);
    expect(await h.stats('busy')).toEqual({ size: 3, oldestAgeMs: 0 });
    expect(h.totalSize()).toBe(4);
  });

  it('bounds the age per instance with the clock it was given', async () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ maxAgeMs: 1_000, now: clock.now });
    h.add(envelope('i', 'old', clock.t));
    clock.t += 600;
    h.add(envelope('i', 'new', clock.t));
    expect(h.statsOf('i')).toEqual({ size: 2, oldestAgeMs: 600 });
    clock.t += 400; // "old" is exactly 1000 ms old: still kept
    expect(h.entriesSince('i', 0).map((e) => e.id)).toEqual(['old', 'new']);
    clock.t += 1; // now it is past the bound
    expect(h.entriesSince('i', 0).map((e) => e.id)).toEqual(['new']);
    expect(h.statsOf('i')).toEqual({ size: 1, oldestAgeMs: 401 });
    clock.t += 1_000;
    expect(h.statsOf('i')).toEqual({ size: 0, oldestAgeMs: null });
    expect(await h.recent('i', 60_000)).toEqual([]);
  });

  it('returns nothing on the first read after every message expired', () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ maxAgeMs: 100, now: clock.now });
    h.add(envelope('i', 'a', clock.t));
    clock.t += 101;
    expect(h.entriesSince('i', 0)).toEqual([]);
    h.add(envelope('j', 'b', clock.t));
    clock.t += 101;
    expect(h.statsOf('j')).toEqual({ size: 0, oldestAgeMs: null });
    expect(h.totalSize()).toBe(0);
  });

  it('has Aphlict bounds by default: 4096 messages and 60 s', () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ now: clock.now });
    for (let i = 0; i < 5000; i++) h.add(envelope('i', `m${i}`, clock.t));
    expect(h.statsOf('i').size).toBe(4096);
    expect(h.entriesSince('i', 0)[0].id).toBe('m904');
    clock.t += 60_000;
    expect(h.statsOf('i').size).toBe(4096);
    clock.t += 1;
    expect(h.statsOf('i').size).toBe(0);
  });

  it('stays correct across many appends (compaction of the dead prefix)', () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ maxMessages: 10, maxAgeMs: 50, now: clock.now });
    for (let i = 0; i < 20_000; i++) {
      clock.t += 1;
      h.add(envelope('i', `m${i}`, clock.t));
    }
    const kept = h.entriesSince('i', 0).map((e) => e.id);
    expect(kept).toEqual(Array.from({ length: 10 }, (_, k) => `m${19_990 + k}`));
  });

  it('reports empty stats for an unknown instance', async () => {
    const h = new MemoryHistory();
    expect(await h.stats('x')).toEqual({ size: 0, oldestAgeMs: null });
  });

  it('close() drops everything', async () => {
    const h = new MemoryHistory();
    h.add(envelope('i', 'a', Date.now()));
    await h.close();
    expect(h.totalSize()).toBe(0);
  });
});

describe('MemoryHistory windows', () => {
  it('recent() reads the requested window on its own clock, never past maxAgeMs', async () => {
    const clock = new FakeClock();
    const h = new MemoryHistory({ maxAgeMs: 1_000, now: clock.now });
    h.add(envelope('i', 'a', clock.t));
    clock.t += 500;
    h.add(envelope('i', 'b', clock.t));
    clock.t += 100;
    expect((await h.recent('i', 200)).map((e) => e.id)).toEqual(['b']);
    expect((await h.recent('i', 600)).map((e) => e.id)).toEqual(['a', 'b']);
    expect((await h.recent('i', 100_000)).map((e) => e.id)).toEqual(['a', 'b']);
    expect(await h.sizes(['i', 'none'])).toEqual(new Map([['i', 2], ['none', 0]]));
    expect(h.holds('i')).toBe(true);
    clock.t += 2_000;
    expect(h.holds('i')).toBe(false);
  });
});
