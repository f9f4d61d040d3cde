import { MemoryHistory, type HistoryWindow } from '@tidings/history';
import type { Envelope } from '@tidings/protocol';
import { WindowReads } from './window-reads';

/** A real memory history that counts its reads and holds each until released. */
class CountingHistory extends MemoryHistory {
  reads: number[] = [];
  private releases: (() => void)[] = [];
  override async window(instance: string, ageMs: number): Promise<HistoryWindow> {
    this.reads.push(ageMs);
    await new Promise<void>((resolve) => this.releases.push(resolve));
    return super.window(instance, ageMs);
  }
  release(): void {
    for (const r of this.releases.splice(0)) r();
  }
}

const envelope = (id: string): Envelope => ({ id, instance: 'i', subscribers: ['P'], frame: `{"subscribers":["P"],"k":"${id}"}`, acceptedAt: Date.now() });
const tick = () => new Promise((r) => setImmediate(r));

describe('WindowReads', () => {
  it('answers the replays of one turn with one read, for the widest age', async () => {
    const history = new CountingHistory();
    history.add(envelope('a'));
    const reads = new WindowReads(history);
    const answers = Promise.all([reads.read('i', 5_000), reads.read('i', 60_000), reads.read('i', 1_000)]);
    await tick();
    expect(history.reads).toEqual([60_000]);
    history.release();
    const windows = await answers;
    expect(windows.every((w) => w === windows[0])).toBe(true);
    expect(windows[0].entries.map((e) => e.id)).toEqual(['a']);
    expect(reads.counts).toEqual({ reads: 1, requests: 3 });
  });

  it('answers a request that arrives during a read with the next read, which begins after it', async () => {
    const history = new CountingHistory();
    const reads = new WindowReads(history);
    const first = reads.read('i', 60_000);
    await tick();
    expect(history.reads).toHaveLength(1);
    // Stored after the first read began: the first may miss it, a later request may not.
    history.add(envelope('late'));
    const second = reads.read('i', 60_000);
    const third = reads.read('i', 60_000);
    await tick();
    expect(history.reads).toHaveLength(1); // one read in flight per instance
    history.release();
    await first;
    await tick();
    expect(history.reads).toHaveLength(2);
    history.release();
    const [w2, w3] = await Promise.all([second, third]);
    expect(w2).toBe(w3);
    expect(w2.entries.map((e) => e.id)).toEqual(['late']);
    // Idle again: the next request starts a read of its own.
    const fourth = reads.read('i', 10);
    await tick();
    expect(history.reads).toEqual([60_000, 60_000, 10]);
    history.release();
    await fourth;
  });

  it('keeps instances apart, and passes a failed read to every request that waited for it', async () => {
    const history = new CountingHistory();
    const reads = new WindowReads(history);
    const a = reads.read('a', 1_000);
    const b = reads.read('b', 1_000);
    await tick();
    expect(history.reads).toHaveLength(2);
    history.release();
    await Promise.all([a, b]);
    const failing = new WindowReads({ ...history, window: () => Promise.reject(new Error('history read: down')) } as unknown as MemoryHistory);
    const results = await Promise.allSettled([failing.read('i', 1), failing.read('i', 2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
