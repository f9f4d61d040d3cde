import { PositionTracker, readPosition } from './position-tracker';

const at = (offset: number, epoch = 'e1') => ({ offset, epoch });

describe('PositionTracker', () => {
  it('position - live delivery advances it, and a position seen before is a duplicate', () => {
    const t = new PositionTracker(100);
    expect(t.position).toBeNull();
    expect(t.receive(at(3))).toBe(true);
    expect(t.receive(at(5))).toBe(true);
    expect(t.position).toEqual(at(5));
    expect(t.receive(at(3))).toBe(false);
    // The same offset in another epoch is another message.
    expect(t.receive(at(3, 'e2'))).toBe(true);
  });

  it('position - the head given when positions are turned on is taken only when none is held', () => {
    const t = new PositionTracker(100);
    t.start(at(10));
    expect(t.position).toEqual(at(10));
    // A reconnect's answer must not skip what came between 10 and 40.
    t.start(at(40));
    expect(t.position).toEqual(at(10));
  });

  it('position - during a replay nothing moves it; the replayed answer settles it with the offsets seen meanwhile', () => {
    const t = new PositionTracker(100);
    t.receive(at(4));
    t.beginReplay();
    expect(t.receive(at(9))).toBe(true); // live, ahead of what the replay sends
    expect(t.receive(at(5))).toBe(true); // replayed
    expect(t.position).toEqual(at(4));
    t.endReplay(at(8));
    expect(t.position).toEqual(at(9));
    // The head wins when it is ahead of everything seen.
    t.beginReplay();
    t.receive(at(10));
    t.endReplay(at(12));
    expect(t.position).toEqual(at(12));
    expect(t.isReplaying).toBe(false);
  });

  it('position - a replay answered in a new epoch (history lost) moves to it, ignoring the old epoch', () => {
    const t = new PositionTracker(100);
    t.receive(at(50));
    t.beginReplay();
    t.receive(at(51)); // old epoch, still in flight
    t.receive(at(2, 'e2'));
    t.endReplay(at(1, 'e2'));
    expect(t.position).toEqual(at(2, 'e2'));
  });

  it('position - a replay with no answer (by age, or failed) counts what it saw as live', () => {
    const t = new PositionTracker(100);
    t.receive(at(7));
    t.beginReplay();
    t.receive(at(6));
    t.receive(at(11));
    t.endReplay();
    expect(t.position).toEqual(at(11));
  });

  it('position - overlapping replays settle when the last one ends', () => {
    const t = new PositionTracker(100);
    t.receive(at(1));
    t.beginReplay();
    t.beginReplay();
    t.receive(at(6));
    t.endReplay(at(4));
    expect(t.position).toEqual(at(6));
    t.receive(at(8));
    expect(t.position).toEqual(at(6));
    t.endReplay();
    expect(t.position).toEqual(at(8));
  });

  it('position - live frames of a new epoch are taken as is; forget() drops the position', () => {
    const t = new PositionTracker(100);
    t.receive(at(90));
    t.receive(at(1, 'e2'));
    expect(t.position).toEqual(at(1, 'e2'));
    t.forget();
    expect(t.position).toBeNull();
  });

  it('position - remembers a bounded number of positions for de-duplication', () => {
    const t = new PositionTracker(2);
    t.receive(at(1));
    t.receive(at(2));
    t.receive(at(3));
    expect(t.receive(at(3))).toBe(false);
    expect(t.receive(at(1))).toBe(true); // forgotten
  });

  it('readPosition - takes a non-negative integer offset and a non-empty epoch, nothing else', () => {
    expect(readPosition({ offset: 0, epoch: 'abc' })).toEqual({ offset: 0, epoch: 'abc' });
    expect(readPosition({ offset: 3, epoch: 'abc', extra: 1 })).toEqual({ offset: 3, epoch: 'abc' });
    for (const bad of [null, 5, 'x', [], {}, { offset: -1, epoch: 'e' }, { offset: 1.5, epoch: 'e' }, { offset: '1', epoch: 'e' }, { offset: 1, epoch: '' }, { offset: 1, epoch: 'e'.repeat(65) }]) {
      expect(readPosition(bad)).toBeNull();
    }
  });
});
