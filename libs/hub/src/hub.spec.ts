import { Hub, type HubMember } from './hub';

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
      expect(hub.subscribe(subscribed, [phid])).toEqual({ added: 1, refused: 0 });
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
    expect(hub.subscribe(a, ['P', 'P'])).toEqual({ added: 1, refused: 0 });
    expect(hub.subscribe(a, ['P'])).toEqual({ added: 0, refused: 0 });
    expect(hub.deliver('default', ['P'], FRAME)).toBe(1);
  });

  it('caps subscriptions per member and refuses the rest, while re-subscribing a held PHID is free', () => {
    const hub = new Hub<Member>({ maxSubscriptionsPerMember: 3 });
    const a = new Member('default');
    const b = new Member('default');
    hub.add(a);
    hub.add(b);
    expect(hub.subscribe(a, ['P1', 'P2'])).toEqual({ added: 2, refused: 0 });
    expect(hub.subscribe(a, ['P1', 'P3', 'P4', 'P5'])).toEqual({ added: 1, refused: 2 });
    expect(hub.subscriptionCount(a)).toBe(3);
    expect(hub.deliver('default', ['P4'], FRAME)).toBe(0);
    // The cap is per member: another member is not affected.
    expect(hub.subscribe(b, ['P4', 'P5', 'P6'])).toEqual({ added: 3, refused: 0 });
    // After an unsubscribe there is room again.
    hub.unsubscribe(a, ['P1']);
    expect(hub.subscribe(a, ['P4'])).toEqual({ added: 1, refused: 0 });
  });

  it('defaults the cap to 10,000', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    const phids = Array.from({ length: 10_001 }, (_, i) => `P${i}`);
    expect(hub.subscribe(a, phids)).toEqual({ added: 10_000, refused: 1 });
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

  it('recipients() does not scan members that do not match', () => {
    const hub = new Hub<Member>();
    const many = Array.from({ length: 1000 }, () => new Member('default'));
    many.forEach((m, i) => {
      hub.add(m);
      hub.subscribe(m, [`P${i}`]);
    });
    const r = hub.recipients('default', ['P3', 'P7', 'P3']);
    expect([...r]).toEqual([many[3], many[7]]);
  });

  it('isSubscribedToAny answers for a member with no subscriptions and for unknown members', () => {
    const hub = new Hub<Member>();
    const a = new Member('default');
    hub.add(a);
    expect(hub.isSubscribedToAny(a, ['P'])).toBe(false);
    expect(hub.isSubscribedToAny(new Member('default'), ['P'])).toBe(false);
  });
});
