import type { Envelope } from '@tidings/protocol';
import type { BusMessage } from './bus';
import { MemoryBus, MemoryBusHub } from './memory-bus';

const envelope = (id: string): Envelope => ({ id, instance: 'default', subscribers: ['PHID-a'], frame: `{"k":"${id}"}`, acceptedAt: 1 });
const tick = () => new Promise((r) => setImmediate(r));

/** Waits, turn by turn, until `check` holds; fails naming `what` after a second. */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 1_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}

const ids = (messages: BusMessage[]) => messages.map((m) => m.id);

async function nodes(count: number, hub = new MemoryBusHub()) {
  const buses = Array.from({ length: count }, (_, i) => new MemoryBus({ hub, nodeId: `n${i}` }));
  const got = buses.map(() => [] as BusMessage[]);
  buses.forEach((b, i) => b.on('message', (m) => got[i].push(m)));
  await Promise.all(buses.map((b) => b.start()));
  return { hub, buses, got };
}

describe('MemoryBus', () => {
  it('delivers to every other node once, stamped with the origin, and drops its own echo', async () => {
    const { buses, got } = await nodes(3);
    await buses[0].publish(envelope('a'));
    await buses[2].publish(envelope('b'));
    await tick();
    expect(got[0]).toEqual([{ ...envelope('b'), origin: 'n2' }]);
    expect(got[1].map((m) => m.id)).toEqual(['a', 'b']);
    expect(got[2]).toEqual([{ ...envelope('a'), origin: 'n0' }]);
    expect(buses[0].stats.echoesDropped).toBe(1);
  });

  it('round-trips a canary through the channel; fails at once when down, and when the bus goes down meanwhile', async () => {
    const { hub, buses } = await nodes(2);
    expect(await buses[0].roundTrip(1_000)).toBeGreaterThanOrEqual(0);
    const pending = buses[0].roundTrip(1_000);
    hub.setUp(false); // before the canary was delivered (delivery is asynchronous)
    await expect(pending).rejects.toThrow(/hub is down/);
    const started = Date.now();
    await expect(buses[0].roundTrip(1_000)).rejects.toThrow(/not connected/);
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('goes down and up with the hub, reporting since when it was down', async () => {
    let clock = 1_000;
    const hub = new MemoryBusHub();
    const bus = new MemoryBus({ hub, now: () => clock });
    const events: unknown[] = [];
    bus.on('up', (info) => events.push(['up', info]));
    bus.on('down', (err) => events.push(['down', err.message]));
    await bus.start();
    hub.setUp(false);
    await expect(bus.publish(envelope('x'))).rejects.toThrow(/not connected/);
    clock = 2_000;
    hub.setUp(true);
    expect(events).toEqual([
      ['up', { reconnect: false, downSince: null }],
      ['down', 'memory bus: hub is down'],
      ['up', { reconnect: true, downSince: 1_000 }],
    ]);
    expect(bus.isConnected).toBe(true);
  });

  it('logs and drops malformed traffic instead of throwing', async () => {
    const { buses, got } = await nodes(1);
    expect(() => buses[0].inject('{nope')).not.toThrow();
    expect(() => buses[0].inject('{"t":"msg","o":"x","e":null}')).not.toThrow();
    expect(got[0]).toEqual([]);
    expect(buses[0].stats.malformed).toBe(2);
  });

  it('a closed node receives nothing more', async () => {
    const { buses, got } = await nodes(3);
    await buses[0].publish(envelope('before'));
    await until('node 1 to get "before"', () => got[1].length === 1);
    await buses[1].close();
    await buses[0].publish(envelope('a'));
    await buses[0].publish(envelope('barrier'));
    // The hub hands each message to the nodes in one order: once node 2 has the barrier,
    // every delivery of "a" has been made, node 1's included.
    await until('node 2 to get the barrier', () => ids(got[2]).includes('barrier'));
    expect(ids(got[2])).toEqual(['before', 'a', 'barrier']);
    expect(ids(got[1])).toEqual(['before']);
  });
});

describe('MemoryBus - one node unreachable', () => {
  it('misses traffic while unreachable and reports the outage when back', async () => {
    const { buses, got } = await nodes(3);
    const ups: unknown[] = [];
    buses[1].on('up', (info) => ups.push(info));
    buses[1].setReachable(false);
    expect(buses[1].isConnected).toBe(false);
    await buses[0].publish(envelope('missed'));
    // Node 2 comes after node 1 in the hub's delivery order: once it has "missed", node 1's
    // copy has been offered (and refused) too.
    await until('node 2 to get "missed"', () => got[2].length === 1);
    buses[1].setReachable(true);
    await buses[0].publish(envelope('seen'));
    await until('node 1 to get "seen"', () => got[1].length > 0);
    await until('node 2 to get "seen"', () => got[2].length === 2);
    expect(ids(got[1])).toEqual(['seen']);
    expect(ids(got[2])).toEqual(['missed', 'seen']);
    expect(ups).toEqual([{ reconnect: true, downSince: expect.any(Number) }]);
  });
});
