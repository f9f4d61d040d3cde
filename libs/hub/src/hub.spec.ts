import { Hub, type HubMember } from './hub';
import { SubscriptionBudget } from './subscription-budget';

class Member implements HubMember {
  readonly frames: string[] = [];
  constructor(
    readonly instance: string,
    readonly name = '',
  ) {}
  send(frame: Buffer): void {
    this.frames.push(frame.toString());
  }
}

const FRAME = '{"type":"notification"}';

function events(hub: Hub<Member>): string[] {
  const log: string[] = [];
  hub.on('first-subscriber', (i, p) => log.push(`first ${i} ${p}`));
  hub.on('last-unsubscribed', (i, p) => log.push(`last ${i} ${p}`));
  return log;
}

/**
 * What a call costs, counted while it runs: reads of each member's properties (members are
 * Proxies), and lookups (Map get/has, Set has) plus steps of Map, Set and array iteration
 * (iterator next, forEach). An index that scans its members has to do one of these per
 * member: ask the member, look its subscriptions up, or step past it.
 */
interface Cost {
  /** Property reads per member, by member. */
  reads: Map<object, number>;
  operations: number;
}

function counted<T extends object>(target: T, reads: Map<object, number>): T {
  const proxy: T = new Proxy(target, {
    get(t, key, receiver) {
      reads.set(proxy, (reads.get(proxy) ?? 0) + 1);
      return Reflect.get(t, key, receiver);
    },
  });
  return proxy;
}

function measure(reads: Map<object, number>, fn: () => unknown): Cost {
  let operations = 0;
  const patched: [object, string, unknown][] = [];
  const count = (owner: object, name: string) => {
    const original = (owner as Record<string, (...a: unknown[]) => unknown>)[name];
    patched.push([owner, name, original]);
    Object.defineProperty(owner, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        operations++;
        return original.apply(this, args);
      },
    });
  };
  count(Map.prototype, 'get');
  count(Map.prototype, 'has');
  count(Set.prototype, 'has');
  count(Map.prototype, 'forEach');
  count(Set.prototype, 'forEach');
  count(Object.getPrototypeOf(new Map()[Symbol.iterator]()), 'next');
  count(Object.getPrototypeOf(new Set()[Symbol.iterator]()), 'next');
  count(Object.getPrototypeOf([][Symbol.iterator]()), 'next');
  reads.clear();
  try {
    fn();
  } finally {
    for (const [owner, name, original] of patched.reverse()) {
      Object.defineProperty(owner, name, { configurable: true, writable: true, value: original });
    }
  }
  return { reads: new Map(reads), operations };
}

/** The calls the scan probe makes, so that a test-local index can go through it too. */
interface Index {
  add(m: HubMember): void;
  subscribe(m: HubMember, phids: string[]): unknown;
  recipients(instance: string, phids: readonly string[]): Iterable<HubMember>;
  deliver(instance: string, phids: readonly string[], json: string): number;
}

/**
 * `others` members that match nothing (each on a PHID of its own), three that match (two
 * sharing a PHID, one alone) and one that matches twice; then the cost of recipients() and
 * deliver() for one message, and the reads of non-matching members.
 */
function scanProbe(createIndex: () => Index, others: number) {
  const reads = new Map<object, number>();
  const index = createIndex();
  const member = (name: string) => counted<HubMember & { name: string }>({ instance: 'default', name, send: () => undefined }, reads);
  const nonMatching = new Set<object>();
  for (let i = 0; i < others; i++) {
    const m = member(`other${i}`);
    nonMatching.add(m);
    index.add(m);
    index.subscribe(m, [`OTHER-${i}`]);
  }
  const [a, b, c] = [member('a'), member('b'), member('c')];
  for (const m of [a, b, c]) index.add(m);
  index.subscribe(a, ['SHARED', 'ALONE']);
  index.subscribe(b, ['SHARED']);
  index.subscribe(c, ['ALONE-TOO']);
  const phids = ['SHARED', 'ALONE', 'ALONE-TOO', 'NOBODY', 'SHARED'];
  let names: string[] = [];
  const recipients = measure(reads, () => {
    names = [...index.recipients('default', phids)].map((m) => (m as HubMember & { name: string }).name).sort();
  });
  let sent = 0;
  const deliver = measure(reads, () => (sent = index.deliver('default', phids, FRAME)));
  const nonMatchingReads = (cost: Cost) => [...cost.reads].filter(([m]) => nonMatching.has(m)).reduce((n, [, r]) => n + r, 0);
  return {
    names,
    sent,
    recipients: { operations: recipients.operations, nonMatchingReads: nonMatchingReads(recipients) },
    deliver: { operations: deliver.operations, nonMatchingReads: nonMatchingReads(deliver) },
  };
}

/** Test-local positive controls: indexes that scan every member, as Aphlict does. */
class ScanningIndex implements Index {
  private readonly subscriptions = new Map<HubMember, Set<string>>();
  add(m: HubMember): void {
    this.subscriptions.set(m, new Set());
  }
  subscribe(m: HubMember, phids: string[]): void {
    for (const p of phids) this.subscriptions.get(m)!.add(p);
  }
  recipients(instance: string, phids: readonly string[]): Set<HubMember> {
    const out = new Set<HubMember>();
    for (const [m, mine] of this.subscriptions) {
      if (m.instance !== instance) continue;
      for (const p of phids) if (mine.has(p)) out.add(m);
    }
    return out;
  }
  deliver(instance: string, phids: readonly string[], json: string): number {
    const to = this.recipients(instance, phids);
    for (const m of to) m.send(Buffer.from(json));
    return to.size;
  }
}

/** Scans with an index loop over an array, asking each member (Aphlict's listener list). */
class ListenerListIndex implements Index {
  private readonly listeners: (HubMember & { phids?: Set<string> })[] = [];
  add(m: HubMember): void {
    this.listeners.push(m);
  }
  subscribe(m: HubMember & { phids?: Set<string> }, phids: string[]): void {
    m.phids ??= new Set();
    for (const p of phids) m.phids.add(p);
  }
  recipients(instance: string, phids: readonly string[]): HubMember[] {
    const out: HubMember[] = [];
    for (let i = 0; i < this.listeners.length; i++) {
      const m = this.listeners[i];
      if (m.instance === instance && phids.some((p) => m.phids!.has(p))) out.push(m);
    }
    return out;
  }
  deliver(instance: string, phids: readonly string[], json: string): number {
    const to = this.recipients(instance, phids);
    for (const m of to) m.send(Buffer.from(json));
    return to.length;
  }
}

describe('Hub', () => {
  it('delivers to the union of sockets subscribed to any addressed PHID, once per socket', () => {
    const hub = new Hub<Member>();
    const a = new Member('default', 'a');
    const b = new Member('default', 'b');
    const c = new Member('default', 'c');
    for (const m of [a, b, c]) hub.add(m);
    hub.subscribe(a, ['P1', 'P2', 'P3']);
    hub.subscribe(b, ['P2']);
    hub.subscribe(c, ['P9']);
    expect(hub.deliver('default', ['P1', 'P2', 'P3', 'P2'], FRAME)).toBe(2);
    expect(a.frames).toEqual([FRAME]);
    expect(b.frames).toEqual([FRAME]);
    expect(c.frames).toEqual([]);
  });

  it('hands every recipient the same Buffer (serialised once)', () => {
    const hub = new Hub();
    const got: Buffer[] = [];
    const mk = (): HubMember => ({ instance: 'i', send: (f) => got.push(f) });
    const x = mk();
    const y = mk();
    hub.add(x);
    hub.add(y);
    hub.subscribe(x, ['P']);
    hub.subscribe(y, ['Q']);
    hub.deliver('i', ['P', 'Q'], FRAME);
    expect(got).toHaveLength(2);
    // Encoded once: both members get the very same Buffer.
    expect(got[0]).toBe(got[1]);
    expect(got[0].toString()).toBe(FRAME);
  });

  it('delivers nothing for unknown instances, unknown PHIDs or no PHIDs', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    hub.subscribe(a, ['P1']);
    expect(hub.deliver('other', ['P1'], FRAME)).toBe(0);
    expect(hub.deliver('default', ['P2'], FRAME)).toBe(0);
    expect(hub.deliver('default', [], FRAME)).toBe(0);
    expect(a.frames).toEqual([]);
  });

  it('keeps instances apart', () => {
    const hub = new Hub<Member>();
    const acme = new Member('acme');
    const dflt = new Member('default');
    hub.add(acme);
    hub.add(dflt);
    hub.subscribe(acme, ['P']);
    hub.subscribe(dflt, ['P']);
    expect(hub.deliver('acme', ['P'], FRAME)).toBe(1);
    expect(acme.frames).toHaveLength(1);
    expect(dflt.frames).toHaveLength(0);
    expect(hub.memberCount('acme')).toBe(1);
    expect(hub.memberCount('default')).toBe(1);
    expect(hub.memberCount()).toBe(2);
    expect(hub.instances().sort()).toEqual(['acme', 'default']);
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'])(
    'treats the PHID %s as an ordinary string',
    (phid) => {
      const hub = new Hub<Member>();
      const subscribed = new Member('default');
      const other = new Member('default');
      hub.add(subscribed);
      hub.add(other);
      hub.subscribe(other, ['PHID-USER-1']);
      // Addressed to the name while nobody holds it: nobody gets it (Aphlict delivers to everyone).
      expect(hub.deliver('default', [phid], FRAME)).toBe(0);
      expect(hub.isSubscribedToAny(other, [phid])).toBe(false);
      expect(hub.subscribe(subscribed, [phid])).toEqual({ added: 1, refused: 0, refusedByNode: 0 });
      expect(hub.deliver('default', [phid], FRAME)).toBe(1);
      expect(subscribed.frames).toHaveLength(1);
      expect(other.frames).toHaveLength(0);
      expect(hub.isSubscribedToAny(subscribed, [phid])).toBe(true);
      expect(hub.unsubscribe(subscribed, [phid])).toBe(1);
      expect(hub.deliver('default', [phid], FRAME)).toBe(0);
    },
  );

  it('treats an instance named like a prototype member as ordinary', () => {
    const hub = new Hub<Member>();
    const m = new Member('__proto__');
    hub.add(m);
    hub.subscribe(m, ['P']);
    expect(hub.deliver('constructor', ['P'], FRAME)).toBe(0);
    expect(hub.deliver('__proto__', ['P'], FRAME)).toBe(1);
    expect(hub.memberCount('toString')).toBe(0);
  });

  it('unsubscribe stops delivery for those PHIDs only', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    hub.subscribe(a, ['P1', 'P2']);
    expect(hub.unsubscribe(a, ['P1', 'P-never'])).toBe(1);
    expect(hub.deliver('default', ['P1'], FRAME)).toBe(0);
    expect(hub.deliver('default', ['P2'], FRAME)).toBe(1);
    expect(hub.subscriptionCount(a)).toBe(1);
  });

  it('subscribing twice to one PHID adds it once', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    expect(hub.subscribe(a, ['P', 'P'])).toEqual({ added: 1, refused: 0, refusedByNode: 0 });
    expect(hub.subscribe(a, ['P'])).toEqual({ added: 0, refused: 0, refusedByNode: 0 });
    expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
  });

  it('caps subscriptions per member and refuses the rest, while re-subscribing a held PHID is free', () => {
    const hub = new Hub<Member>({ maxSubscriptionsPerMember: 3 });
    const a = new Member('default');
    const b = new Member('default');
    hub.add(a);
    hub.add(b);
    expect(hub.subscribe(a, ['P1', 'P2'])).toEqual({ added: 2, refused: 0, refusedByNode: 0 });
    expect(hub.subscribe(a, ['P1', 'P3', 'P4', 'P5'])).toEqual({ added: 1, refused: 2, refusedByNode: 0 });
    expect(hub.subscriptionCount(a)).toBe(3);
    expect(hub.deliver('default', ['P4'], FRAME)).toBe(0);
    // The cap is per member: another member is not affected.
    expect(hub.subscribe(b, ['P4', 'P5', 'P6'])).toEqual({ added: 3, refused: 0, refusedByNode: 0 });
    // After an unsubscribe there is room again.
    hub.unsubscribe(a, ['P1']);
    expect(hub.subscribe(a, ['P4'])).toEqual({ added: 1, refused: 0, refusedByNode: 0 });
  });

  it('defaults the cap to 10,000', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    const phids = Array.from({ length: 10_001 }, (_, i) => `P${i}`);
    expect(hub.subscribe(a, phids)).toEqual({ added: 10_000, refused: 1, refusedByNode: 0 });
  });

  it('emits first-subscriber and last-unsubscribed per (instance, PHID)', () => {
    const hub = new Hub<Member>();
    const log = events(hub);
    const a = new Member('default');
    const b = new Member('default');
    const c = new Member('acme');
    for (const m of [a, b, c]) hub.add(m);
    hub.subscribe(a, ['P1', 'P2']);
    hub.subscribe(b, ['P1']);
    hub.subscribe(c, ['P1']);
    expect(log).toEqual(['first default P1', 'first default P2', 'first acme P1']);
    log.length = 0;
    hub.unsubscribe(a, ['P1']);
    expect(log).toEqual([]);
    hub.unsubscribe(b, ['P1']);
    expect(log).toEqual(['last default P1']);
    log.length = 0;
    hub.remove(a);
    hub.remove(c);
    expect(log.sort()).toEqual(['last acme P1', 'last default P2']);
  });

  it('remove drops every subscription and the member count; removing twice is harmless', () => {
    const hub = new Hub<Member>();
    const log = events(hub);
    const a = new Member('default');
    hub.add(a);
    hub.add(a);
    expect(hub.memberCount('default')).toBe(1);
    hub.subscribe(a, ['P1', 'P2']);
    hub.remove(a);
    hub.remove(a);
    expect(hub.deliver('default', ['P1', 'P2'], FRAME)).toBe(0);
    expect(hub.memberCount('default')).toBe(0);
    expect(hub.memberCount()).toBe(0);
    expect(hub.instances()).toEqual([]);
    expect(hub.subscriptionCount(a)).toBe(0);
    expect(log.filter((l) => l.startsWith('last'))).toHaveLength(2);
  });

  it('refuses subscribe of a member that was not added, and ignores its unsubscribe', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    expect(() => hub.subscribe(a, ['P'])).toThrow(/not added/);
    expect(hub.unsubscribe(a, ['P'])).toBe(0);
  });

  it('survives a member that removes itself (or another) during delivery', () => {
    const hub = new Hub();
    const received: string[] = [];
    const members: HubMember[] = [];
    for (let i = 0; i < 4; i++) {
      const m: HubMember = {
        instance: 'default',
        send: () => {
          received.push(`m${i}`);
          // A slow reader closes itself and its neighbour mid-delivery.
          hub.remove(m);
          if (i === 0) hub.remove(members[1]);
        },
      };
      members.push(m);
      hub.add(m);
      hub.subscribe(m, ['P', `Q${i}`]);
    }
    expect(hub.deliver('default', ['P', 'Q0'], FRAME)).toBe(4);
    expect(received).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect(hub.memberCount()).toBe(0);
  });

  it('isSubscribedToAny answers for a member with no subscriptions and for unknown members', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    expect(hub.isSubscribedToAny(a, ['P'])).toBe(false);
    expect(hub.isSubscribedToAny(new Member('default'), ['P'])).toBe(false);
  });

  describe('cost follows recipients, not members', () => {
    const hubIndex = () => new Hub() as unknown as Index;

    it('recipients() and deliver() neither read nor look up members that do not match', () => {
      const small = scanProbe(hubIndex, 10);
      const large = scanProbe(hubIndex, 5_000);
      for (const probe of [small, large]) {
        expect(probe.names).toEqual(['a', 'b', 'c']);
        expect(probe.sent).toBe(3);
        expect(probe.recipients.nonMatchingReads).toBe(0);
        expect(probe.deliver.nonMatchingReads).toBe(0);
      }
      // The same work for 10 or 5,000 other members, and little of it.
      expect(large.recipients.operations).toBe(small.recipients.operations);
      expect(large.deliver.operations).toBe(small.deliver.operations);
      expect(large.deliver.operations).toBeLessThan(50);
    });

    it.each([
      ['iterates its member map', () => new ScanningIndex()],
      ['asks every listener in a list', () => new ListenerListIndex()],
    ])('positive control: the probe sees an index that %s', (_name, create) => {
      const small = scanProbe(create, 10);
      const large = scanProbe(create, 5_000);
      // Same answers as the hub: only the cost tells them apart.
      expect(large.names).toEqual(['a', 'b', 'c']);
      expect(large.sent).toBe(3);
      const seen = (p: typeof large.recipients) => p.operations + p.nonMatchingReads;
      expect(seen(large.recipients) - seen(small.recipients)).toBeGreaterThanOrEqual(4_990);
      expect(seen(large.deliver) - seen(small.deliver)).toBeGreaterThanOrEqual(4_990);
    });
  });

  describe('one member, then a set, then one again', () => {
    it.each([
      ['the first', 0],
      ['the second', 1],
    ])('a PHID goes from 1 to 2 to 1 to 0 members (%s leaves first): delivery, events and counts', (_name, leavesFirst) => {
      const hub = new Hub<Member>();
      const log = events(hub);
      const both = [new Member('default', 'a'), new Member('default', 'b')];
      for (const m of both) hub.add(m);
      const [first, second] = [both[leavesFirst], both[1 - leavesFirst]];
      const names = () => [...hub.recipients('default', ['P'])].map((m) => m.name).sort();

      expect(hub.subscribe(both[0], ['P'])).toEqual({ added: 1, refused: 0, refusedByNode: 0 });
      expect(log).toEqual(['first default P']);
      expect(names()).toEqual(['a']);

      expect(hub.subscribe(both[1], ['P'])).toEqual({ added: 1, refused: 0, refusedByNode: 0 });
      expect(hub.subscribe(both[1], ['P'])).toEqual({ added: 0, refused: 0, refusedByNode: 0 });
      expect(log).toEqual(['first default P']);
      expect(names()).toEqual(['a', 'b']);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(2);

      expect(hub.unsubscribe(first, ['P'])).toBe(1);
      expect(hub.unsubscribe(first, ['P'])).toBe(0);
      expect(log).toEqual(['first default P']);
      expect(names()).toEqual([second.name]);
      expect(hub.isSubscribedToAny(first, ['P'])).toBe(false);
      expect(hub.isSubscribedToAny(second, ['P'])).toBe(true);
      expect(hub.subscriptionCount(first)).toBe(0);
      expect(hub.subscriptionCount(second)).toBe(1);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
      expect(second.frames).toHaveLength(2);
      expect(first.frames).toHaveLength(1);

      expect(hub.unsubscribe(second, ['P'])).toBe(1);
      expect(log).toEqual(['first default P', 'last default P']);
      expect(names()).toEqual([]);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(0);

      // And back to two: the PHID starts again.
      hub.subscribe(first, ['P']);
      hub.subscribe(second, ['P']);
      expect(log).toEqual(['first default P', 'last default P', 'first default P']);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(2);
    });

    it('unsubscribing the lone member ends the PHID; a member that does not hold it changes nothing', () => {
      const hub = new Hub<Member>();
      const log = events(hub);
      const a = new Member('default', 'a');
      const b = new Member('default', 'b');
      hub.add(a);
      hub.add(b);
      hub.subscribe(a, ['P']);
      expect(hub.unsubscribe(b, ['P'])).toBe(0);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
      expect(hub.unsubscribe(a, ['P'])).toBe(1);
      expect(log).toEqual(['first default P', 'last default P']);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(0);
      expect(hub.isSubscribedToAny(a, ['P'])).toBe(false);
    });

    it('refuses a member at its cap on a PHID that others hold, and leaves their entry as it was', () => {
      const hub = new Hub<Member>({ maxSubscriptionsPerMember: 1 });
      const log = events(hub);
      const a = new Member('default', 'a');
      const b = new Member('default', 'b');
      const c = new Member('default', 'c');
      for (const m of [a, b, c]) hub.add(m);
      hub.subscribe(a, ['P']);
      hub.subscribe(b, ['Q']);
      expect(hub.subscribe(b, ['P'])).toEqual({ added: 0, refused: 1, refusedByNode: 0 });
      expect([...hub.recipients('default', ['P'])]).toEqual([a]);
      hub.subscribe(c, ['P']);
      expect(hub.subscribe(b, ['P'])).toEqual({ added: 0, refused: 1, refusedByNode: 0 });
      expect([...hub.recipients('default', ['P'])].map((m) => m.name).sort()).toEqual(['a', 'c']);
      expect(hub.isSubscribedToAny(b, ['P'])).toBe(false);
      hub.remove(a);
      hub.remove(c);
      expect(log).toEqual(['first default P', 'first default Q', 'last default P']);
    });

    it('a lone member that removes itself while it is sent to is sent to once, and is gone after', () => {
      const hub = new Hub();
      let sends = 0;
      const m: HubMember = {
        instance: 'default',
        send: () => {
          sends++;
          hub.remove(m);
        },
      };
      hub.add(m);
      hub.subscribe(m, ['P']);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
      expect(hub.deliver('default', ['P'], FRAME)).toBe(0);
      expect(sends).toBe(1);
      expect(hub.memberCount()).toBe(0);
    });

    it('a send that removes the other member of a pair still reaches both; then the survivor alone gets the next', () => {
      const hub = new Hub<Member>();
      const log = events(hub);
      const a = new Member('default', 'a');
      const b = new Member('default', 'b');
      hub.add(a);
      hub.add(b);
      hub.subscribe(a, ['P']);
      hub.subscribe(b, ['P']);
      // Sending to either one closes the other (say, both sockets of one client cut off):
      // the set drops to its lone survivor in the middle of the delivery.
      const sendA = a.send.bind(a);
      const sendB = b.send.bind(b);
      let cut = false;
      const cutOther = (other: Member) => {
        if (cut) return;
        cut = true;
        hub.remove(other);
      };
      a.send = (f) => (sendA(f), cutOther(b));
      b.send = (f) => (sendB(f), cutOther(a));
      expect(hub.deliver('default', ['P'], FRAME)).toBe(2);
      expect(a.frames).toHaveLength(1);
      expect(b.frames).toHaveLength(1);
      expect(hub.memberCount()).toBe(1);
      expect(log).toEqual(['first default P']);
      const survivor = hub.isSubscribedToAny(a, ['P']) ? a : b;
      expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
      expect(survivor.frames).toHaveLength(2);
    });

    it('recipients() of one lone member is that member; the same member on two matching PHIDs comes once', () => {
      const hub = new Hub<Member>();
      const a = new Member('default', 'a');
      const b = new Member('default', 'b');
      hub.add(a);
      hub.add(b);
      hub.subscribe(a, ['P', 'Q']);
      hub.subscribe(b, ['Q']);
      expect([...hub.recipients('default', ['P'])]).toEqual([a]);
      expect([...hub.recipients('default', ['P', 'P'])]).toEqual([a]);
      expect([...hub.recipients('default', ['P', 'Q'])].map((m) => m.name).sort()).toEqual(['a', 'b']);
      expect([...hub.recipients('default', ['Q', 'P'])].map((m) => m.name).sort()).toEqual(['a', 'b']);
      expect(hub.deliver('default', ['P', 'Q', 'P'], FRAME)).toBe(2);
      expect(a.frames).toEqual([FRAME]);
    });
  });

  describe("a member's own list of PHIDs", () => {
    /** White box: the length of a member's list, stale entries included (the memory bound). */
    const listLength = (hub: Hub<Member>, m: Member) => (hub as unknown as { members: Map<Member, { phids: string[] }> }).members.get(m)!.phids.length;

    it('re-subscribing after an unsubscribe holds the PHID once, and remove() ends it once', () => {
      const hub = new Hub<Member>();
      const log = events(hub);
      const a = new Member('default', 'a');
      const b = new Member('default', 'b');
      hub.add(a);
      hub.add(b);
      for (let i = 0; i < 3; i++) {
        expect(hub.subscribe(a, ['P', 'S'])).toEqual({ added: 2, refused: 0, refusedByNode: 0 });
        if (i === 0) hub.subscribe(b, ['S']);
        expect(hub.unsubscribe(a, ['P', 'S'])).toBe(2);
      }
      expect(hub.subscribe(a, ['P', 'S'])).toEqual({ added: 2, refused: 0, refusedByNode: 0 });
      expect(hub.subscriptionCount(a)).toBe(2);
      expect(listLength(hub, a)).toBeGreaterThan(2); // stale entries and repeats are there
      expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
      log.length = 0;
      hub.remove(a);
      expect(log).toEqual(['last default P']);
      // b still holds S, alone now.
      expect([...hub.recipients('default', ['S'])]).toEqual([b]);
      expect(hub.subscriptionCount(b)).toBe(1);
      hub.remove(b);
      expect(log).toEqual(['last default P', 'last default S']);
      expect(hub.instances()).toEqual([]);
    });

    it('stays within twice the PHIDs held (plus a little) however often they are unsubscribed and subscribed again', () => {
      const hub = new Hub<Member>({ maxSubscriptionsPerMember: 1_000 });
      const log = events(hub);
      const a = new Member('default', 'a');
      hub.add(a);
      const held = Array.from({ length: 500 }, (_, i) => `H${i}`);
      hub.subscribe(a, held);
      let longest = 0;
      for (let round = 0; round < 200; round++) {
        const toggled = Array.from({ length: 50 }, (_, i) => `T${(round * 7 + i) % 300}`);
        hub.subscribe(a, toggled);
        hub.unsubscribe(a, toggled.slice(0, 40));
        longest = Math.max(longest, listLength(hub, a));
        expect(listLength(hub, a)).toBeLessThanOrEqual(2 * hub.subscriptionCount(a) + 32 + 50);
      }
      // Compaction happened (the list grew past what is held at some point) and kept what is held.
      expect(longest).toBeGreaterThan(hub.subscriptionCount(a));
      expect(hub.isSubscribedToAny(a, ['H0'])).toBe(true);
      expect(hub.isSubscribedToAny(a, ['H499'])).toBe(true);
      // Unsubscribing everything leaves an empty list, and remove() then emits nothing more.
      const count = hub.subscriptionCount(a);
      const all = [...held, ...Array.from({ length: 300 }, (_, i) => `T${i}`)];
      expect(hub.unsubscribe(a, all)).toBe(count);
      expect(hub.subscriptionCount(a)).toBe(0);
      expect(listLength(hub, a)).toBe(0);
      const lasts = log.filter((l) => l.startsWith('last')).length;
      const firsts = log.filter((l) => l.startsWith('first')).length;
      expect(lasts).toBe(firsts);
      hub.remove(a);
      expect(log.filter((l) => l.startsWith('last')).length).toBe(lasts);
    });

    it('remove() of one member of many leaves the others and their PHIDs alone', () => {
      const hub = new Hub<Member>();
      const log = events(hub);
      const members = Array.from({ length: 5 }, (_, i) => new Member('default', `m${i}`));
      for (const m of members) {
        hub.add(m);
        hub.subscribe(m, ['ALL', `OWN-${m.name}`]);
      }
      log.length = 0;
      hub.remove(members[2]);
      expect(log).toEqual(['last default OWN-m2']);
      expect(hub.deliver('default', ['ALL'], FRAME)).toBe(4);
      expect(members[2].frames).toEqual([]);
      for (const m of members) if (m !== members[2]) expect(hub.isSubscribedToAny(m, ['ALL', `OWN-${m.name}`])).toBe(true);
    });
  });
});

describe('Hub: the node-wide subscription budget', () => {
  const member = (instance = 'i') => ({ instance, frames: [] as Buffer[], send(f: Buffer) { this.frames.push(f); } });

  it('refuses subscriptions past the budget shared by every member, and takes them again once given back', () => {
    const budget = new SubscriptionBudget(3);
    const hub = new Hub({ maxSubscriptionsPerMember: 10, budget });
    const a = member();
    const b = member();
    hub.add(a);
    hub.add(b);
    expect(hub.subscribe(a, ['P1', 'P2'])).toEqual({ added: 2, refused: 0, refusedByNode: 0 });
    expect(hub.subscribe(b, ['P1', 'P3'])).toEqual({ added: 1, refused: 0, refusedByNode: 1 });
    expect(budget.held).toBe(3);
    // A repeat costs nothing; an unsubscribe and a member leaving give back what they held.
    expect(hub.subscribe(a, ['P1'])).toEqual({ added: 0, refused: 0, refusedByNode: 0 });
    hub.unsubscribe(a, ['P2']);
    expect(budget.held).toBe(2);
    expect(hub.subscribe(b, ['P3'])).toEqual({ added: 1, refused: 0, refusedByNode: 0 });
    hub.remove(a);
    expect(budget.held).toBe(2);
    hub.remove(b);
    expect(budget.held).toBe(0);
  });

  it('shares one budget between hubs (as between transports), and 0 means no bound', () => {
    const budget = new SubscriptionBudget(1);
    const one = new Hub({ budget });
    const other = new Hub({ budget });
    const a = member();
    const b = member();
    one.add(a);
    other.add(b);
    expect(one.subscribe(a, ['X']).added).toBe(1);
    expect(other.subscribe(b, ['Y']).refusedByNode).toBe(1);
    const unbounded = new SubscriptionBudget(0);
    for (let i = 0; i < 1_000; i++) expect(unbounded.take()).toBe(true);
  });
});
