import { InstanceRegistry } from './instances';

describe('InstanceRegistry', () => {
  it('admits sockets of live instances past the cap, and new ones only below it', () => {
    const r = new InstanceRegistry({ maxInstances: 2 });
    for (const i of ['a', 'b']) {
      expect(r.canAdmit(i)).toBe(true);
      r.socketJoined(i);
    }
    expect(r.canAdmit('a')).toBe(true);
    expect(r.canAdmit('c')).toBe(false);
    r.socketJoined('a');
    expect(r.totalConnections('a')).toBe(2);
    r.socketLeft('b');
    expect(r.size).toBe(1);
    expect(r.canAdmit('c')).toBe(true);
  });

  it('keeps an instance without sockets while it holds history, and lets it go after', () => {
    let t = 0;
    const held = new Set(['a']);
    const r = new InstanceRegistry({ maxInstances: 1, holdsHistory: (i) => held.has(i), now: () => t });
    expect(r.admitStore('a')).toBe(true);
    r.socketJoined('a');
    r.socketLeft('a');
    expect(r.size).toBe(1);
    expect(r.admitStore('b')).toBe(false);
    held.delete('a'); // its history aged out
    expect(r.canAdmit('b')).toBe(false); // looked less than a second ago
    t += 1_000;
    expect(r.canAdmit('b')).toBe(true);
    expect(r.size).toBe(0);
    expect(r.totalConnections('a')).toBe(0);
  });

  it('always admits a store when history is shared (no per-instance state on the node)', () => {
    const r = new InstanceRegistry({ maxInstances: 1 });
    r.socketJoined('a');
    expect(r.admitStore('zzz')).toBe(true);
    expect(r.size).toBe(1);
  });
});
