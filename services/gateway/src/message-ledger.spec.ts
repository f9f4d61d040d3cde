import { MessageLedger } from './message-ledger';

const ledger = (options: Partial<ConstructorParameters<typeof MessageLedger>[0]> = {}) =>
  new MessageLedger({ ttlMs: 1_000, maxEntries: 100, ...options });

describe('MessageLedger', () => {
  it('claims an id once per instance; a stored id is done', () => {
    const l = ledger();
    const first = l.claim('default', 'a');
    expect(first.kind).toBe('new');
    if (first.kind === 'new') first.settle();
    expect(l.claim('default', 'a').kind).toBe('done');
    expect(l.claim('acme', 'a').kind).toBe('new');
  });

  it('does not confuse instance and id boundaries', () => {
    const l = ledger();
    expect(l.firstDelivery('a', 'bc')).toBe(true);
    expect(l.firstDelivery('ab', 'c')).toBe(true);
  });

  it('makes a copy that arrives while the first is being stored wait for its outcome, success', async () => {
    const l = ledger();
    const first = l.claim('i', 'x');
    if (first.kind !== 'new') throw new Error('expected new');
    const second = l.claim('i', 'x');
    expect(second.kind).toBe('wait');
    let settled = false;
    const waiting = (second as { outcome: Promise<void> }).outcome.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false); // not before the first copy's store ends
    first.settle();
    await waiting;
    expect(settled).toBe(true);
    expect(l.claim('i', 'x').kind).toBe('done');
  });

  it('shares a failed store with the copies that waited, and lets a later copy store without delivering', async () => {
    const l = ledger();
    const first = l.claim('i', 'x');
    if (first.kind !== 'new') throw new Error('expected new');
    const second = l.claim('i', 'x') as { kind: 'wait'; outcome: Promise<void> };
    first.settle(new Error('redis down'));
    await expect(second.outcome).rejects.toThrow('redis down');
    const retry = l.claim('i', 'x');
    expect(retry.kind).toBe('store-only');
    // While the retry stores, further copies wait for it.
    expect(l.claim('i', 'x').kind).toBe('wait');
    if (retry.kind === 'store-only') retry.settle();
    expect(l.claim('i', 'x').kind).toBe('done');
  });

  it('a failed store nobody waits for is not an unhandled rejection', async () => {
    const escaped: unknown[] = [];
    const onEscape = (r: unknown) => escaped.push(r);
    process.on('unhandledRejection', onEscape);
    try {
      const c = ledger().claim('i', 'lonely');
      if (c.kind === 'new') c.settle(new Error('nobody listens'));
      await new Promise((r) => setTimeout(r, 20));
      expect(escaped).toEqual([]);
    } finally {
      process.off('unhandledRejection', onEscape);
    }
  });

  it('delivers the first copy from the bus once, and treats ids claimed by the publish path as seen', () => {
    const l = ledger();
    expect(l.firstDelivery('i', 'bus')).toBe(true);
    expect(l.firstDelivery('i', 'bus')).toBe(false);
    expect(l.claim('i', 'bus').kind).toBe('done'); // stored by the node that accepted it
    const c = l.claim('i', 'mine');
    expect(l.firstDelivery('i', 'mine')).toBe(false); // being stored here: already delivered here
    if (c.kind === 'new') c.settle(new Error('x'));
    expect(l.firstDelivery('i', 'mine')).toBe(false); // delivered here though unstored
  });

  it('forgets ids after the ttl, with the clock it was given', () => {
    let t = 0;
    const l = ledger({ now: () => t });
    l.firstDelivery('i', 'a');
    t = 500;
    l.firstDelivery('i', 'b');
    t = 1_000;
    expect(l.firstDelivery('i', 'a')).toBe(false); // exactly ttl old: still remembered
    t = 1_001;
    expect(l.firstDelivery('i', 'a')).toBe(true);
    expect(l.firstDelivery('i', 'b')).toBe(false);
  });

  it('keeps at most maxEntries, forgetting the oldest first', () => {
    const l = ledger({ ttlMs: 60_000, maxEntries: 3, now: () => 0 });
    for (const id of ['a', 'b', 'c', 'd']) expect(l.firstDelivery('i', id)).toBe(true);
    expect(l.size).toBe(3);
    expect(l.has('i', 'a')).toBe(false);
    expect(l.firstDelivery('i', 'd')).toBe(false);
    expect(l.firstDelivery('i', 'b')).toBe(false);
  });

  it('never forgets an id while it is being stored, however old or many', () => {
    let t = 0;
    const l = ledger({ ttlMs: 100, maxEntries: 2, now: () => t });
    const c = l.claim('i', 'slow');
    for (const id of ['a', 'b', 'c']) l.firstDelivery('i', id);
    t = 10_000;
    l.firstDelivery('i', 'late');
    expect(l.claim('i', 'slow').kind).toBe('wait');
    if (c.kind === 'new') c.settle();
    expect(l.claim('i', 'slow').kind).toBe('done');
    t = 20_000;
    l.firstDelivery('i', 'later');
    expect(l.has('i', 'slow')).toBe(false); // expires normally once settled
  });
});
