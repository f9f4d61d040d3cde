/**
 * Backfill after a bus outage when the history read fails at first, as after a Redis
 * restart where the subscription is back before the history connection: two nodes on an
 * in-process bus sharing one history store, whose reads fail a set number of times.
 */
import { silentLogger, type Envelope, type Position } from '@tidings/protocol';
import { MemoryBus, MemoryBusHub } from '@tidings/bus';
import { MemoryHistory, type HistoryStore } from '@tidings/history';
import type { HubMember } from '@tidings/hub';
import { TidingsNode } from './node';

/** The shared history, with its next `failures` reads failing as an unreachable Redis would. */
class UnreachableAtFirst implements HistoryStore {
  failures = 0;
  reads = 0;
  constructor(private readonly inner: HistoryStore) {}
  append(entry: Envelope) {
    return this.inner.append(entry);
  }
  async recent(instance: string, ageMs: number) {
    this.reads++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('history: Redis did not answer within 500 ms');
    }
    return this.inner.recent(instance, ageMs);
  }
  stats(instance: string) {
    return this.inner.stats(instance);
  }
  sizes(instances: readonly string[]) {
    return this.inner.sizes(instances);
  }
  after(instance: string, since: Position) {
    return this.inner.after(instance, since);
  }
  head(instance: string) {
    return this.inner.head(instance);
  }
  close() {
    return Promise.resolve();
  }
}

/** A recipient that keeps what it is sent. */
class Inbox implements HubMember {
  readonly instance = 'default';
  readonly frames: string[] = [];
  send(frame: Buffer): void {
    this.frames.push(frame.toString());
  }
  keys(): string[] {
    return this.frames.map((f) => (JSON.parse(f) as { key: string }).key);
  }
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('node: backfill after a bus outage', () => {
  // A clock the test can move forward, shared by history, buses and nodes.
  let offset = 0;
  const now = () => Date.now() + offset;
  let shared: MemoryHistory;
  let hub: MemoryBusHub;
  let a: TidingsNode;
  let b: TidingsNode;
  let bHistory: UnreachableAtFirst;
  let buses: MemoryBus[];

  beforeEach(async () => {
    offset = 0;
    shared = new MemoryHistory({ now });
    hub = new MemoryBusHub();
    buses = [new MemoryBus({ hub, now }), new MemoryBus({ hub, now })];
    await Promise.all(buses.map((bus) => bus.start()));
    bHistory = new UnreachableAtFirst(shared);
    const options = { historyMaxAgeMs: 60_000, maxSubscriptionsPerSocket: 100, logger: silentLogger, now };
    a = new TidingsNode({ ...options, history: shared, bus: buses[0] });
    b = new TidingsNode({ ...options, history: bHistory, bus: buses[1] });
  });

  afterEach(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
  });

  const message = (key: string) => ({ type: 'notification', key, subscribers: ['PHID-USER-b'], uniqueID: `id-${key}` });

  /** A recipient on node B; then the bus goes down and node A accepts `key` meanwhile. */
  async function outageWith(key: string): Promise<Inbox> {
    const inbox = new Inbox();
    b.hub.add(inbox);
    b.hub.subscribe(inbox, ['PHID-USER-b']);
    hub.setUp(false);
    await a.publish('default', message(key));
    return inbox;
  }

  it('retries a failed history read while the bus is up, and delivers what was missed once', async () => {
    const inbox = await outageWith('during-outage');
    expect(inbox.keys()).toEqual([]);

    bHistory.failures = 2;
    hub.setUp(true);
    // 250 ms, then 500 ms between attempts: the third read succeeds.
    await until(() => inbox.keys().length > 0, 3_000, 'the backfilled message');
    expect(bHistory.reads).toBe(3);
    await a.publish('default', message('after'));
    await until(() => inbox.keys().includes('after'), 1_000, 'the live message');
    expect(inbox.keys()).toEqual(['during-outage', 'after']);
  });

  it('owes a failed backfill to the next reconnect when the bus drops again, from the earlier outage on', async () => {
    const inbox = await outageWith('first-outage');
    bHistory.failures = 1;
    hub.setUp(true);
    await until(() => bHistory.reads === 1, 1_000, 'the first (failing) backfill read');
    // Down again before the retry, well after the first outage began (beyond the 5 s margin
    // a backfill reaches back): no retry while down.
    offset += 20_000;
    hub.setUp(false);
    await new Promise((r) => setTimeout(r, 400));
    expect(bHistory.reads).toBe(1);
    await a.publish('default', message('second-outage'));
    hub.setUp(true);
    await until(() => inbox.keys().length === 2, 2_000, 'both outages backfilled');
    expect(inbox.keys().sort()).toEqual(['first-outage', 'second-outage']);
  });
});
