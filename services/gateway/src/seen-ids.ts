/**
 * Ids of messages this node has already delivered, per instance, so a message that arrives
 * again by another path (bus, relay, a peer relaying it back) is dropped. Insertion-ordered
 * Map: entries expire from the front, by age and by count, in amortised O(1).
 */
export interface SeenIdsOptions {
  /** How long an id is remembered, ms. The gateway uses twice the history window. */
  ttlMs: number;
  /** Most ids remembered; the oldest go first. */
  maxEntries: number;
  now?: () => number;
}

export class SeenIds {
  private readonly seen = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: SeenIdsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Marks the id seen; returns false if it was seen already (a duplicate). */
  markNew(instance: string, id: string): boolean {
    const key = `${instance}\u0000${id}`;
    const now = this.now();
    this.expire(now, 0);
    if (this.seen.has(key)) return false;
    // Make room only when adding, so duplicates do not shrink the set below maxEntries.
    this.expire(now, 1);
    this.seen.set(key, now);
    return true;
  }

  has(instance: string, id: string): boolean {
    return this.seen.has(`${instance}\u0000${id}`);
  }

  get size(): number {
    return this.seen.size;
  }

  /** Drops expired ids, and the oldest until `room` more fit under maxEntries. */
  private expire(now: number, room: number): void {
    const minAt = now - this.options.ttlMs;
    let excess = this.seen.size - this.options.maxEntries + room;
    for (const [key, at] of this.seen) {
      if (excess <= 0 && at >= minAt) break;
      this.seen.delete(key);
      excess--;
    }
  }
}
