/**
 * Where the client is in its instance's history (positions: libs/protocol/src/positions.ts),
 * and which positioned messages it has already delivered. Pure bookkeeping, no I/O.
 *
 * The position is what a reconnect replays from (`replay {since}`), so it may only move past
 * offsets the client provably has: outside a replay, every positioned frame is live delivery
 * on a connection whose subscriptions are in place, and advances it. During a replay, frames
 * are a mix of replayed and live ones: their offsets are only noted, and the position is
 * settled when the replay ends, from the server's `replayed` answer (the head when the
 * replay read history; everything up to it matching the subscriptions was sent) and the
 * offsets noted meanwhile.
 */
import type { Position } from '@tidings/protocol';
import { RecentIds } from './recent-ids';

export type { Position } from '@tidings/protocol';

/** Longest epoch accepted from a server (Tidings' are 16 hex digits; the server caps clients' at 64). */
const MAX_EPOCH_LENGTH = 64;

/** Reads `{offset, epoch}` from the wire; null when it is not one. */
export function readPosition(value: unknown): Position | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { offset, epoch } = value as { offset?: unknown; epoch?: unknown };
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return null;
  if (typeof epoch !== 'string' || epoch === '' || epoch.length > MAX_EPOCH_LENGTH) return null;
  return { offset, epoch };
}

export class PositionTracker {
  private held: Position | null = null;
  /** Replays running (the client's own and an app's `replay()` may overlap). */
  private replays = 0;
  /** The highest offset per epoch seen while a replay ran. */
  private readonly noted = new Map<string, number>();
  private readonly delivered: RecentIds;

  /** `dedupeSize`: how many delivered positions are remembered to drop duplicates. */
  constructor(dedupeSize: number) {
    this.delivered = new RecentIds(dedupeSize);
  }

  /** The position the client would replay from now; null when it holds none. */
  get position(): Position | null {
    return this.held && { ...this.held };
  }

  get isReplaying(): boolean {
    return this.replays > 0;
  }

  /**
   * A message with this position arrived. Returns false when a message with the same
   * position was already delivered (a replay overlapping live delivery), whether or not
   * it has a `uniqueID`.
   */
  receive(position: Position): boolean {
    const fresh = this.delivered.add(`${position.offset}@${position.epoch}`);
    this.note(position);
    return fresh;
  }

  /**
   * Where the instance's history is when positions were turned on. Taken only when the
   * client holds no position: on a reconnect, adopting it would skip what came in between.
   */
  start(head: Position): void {
    if (this.held === null) this.note(head);
  }

  beginReplay(): void {
    this.replays++;
  }

  /**
   * A replay ended. `head`: the server's `replayed` answer to a replay by position (the
   * position is then the larger of its offset and those seen since, in its epoch); without
   * it (a replay by age, or one that failed) the offsets seen meanwhile count as live ones.
   */
  endReplay(head?: Position): void {
    if (this.replays > 0) this.replays--;
    if (head) {
      const seen = this.noted.get(head.epoch);
      this.held = { epoch: head.epoch, offset: Math.max(head.offset, seen ?? 0) };
      if (this.replays > 0) this.noted.set(head.epoch, this.held.offset);
    }
    if (this.replays > 0) return;
    const noted = [...this.noted];
    this.noted.clear();
    if (!head) for (const [epoch, offset] of noted) this.advance({ epoch, offset });
  }

  /** The server does not offer positions: the old position no longer describes what the client has. */
  forget(): void {
    this.held = null;
    this.noted.clear();
  }

  private note(position: Position): void {
    if (this.replays === 0) return this.advance(position);
    const seen = this.noted.get(position.epoch);
    if (seen === undefined || position.offset > seen) this.noted.set(position.epoch, position.offset);
  }

  /**
   * Live delivery moves the position forward. A new epoch means the server's history was
   * lost while this connection kept receiving: its offsets start over, and are taken as is.
   */
  private advance(position: Position): void {
    if (this.held === null || this.held.epoch !== position.epoch) this.held = { ...position };
    else if (position.offset > this.held.offset) this.held.offset = position.offset;
  }
}
