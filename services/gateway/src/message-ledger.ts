/**
 * One owner for "have we seen this message id on this node, and is it stored?".
 *
 * Who asks what:
 * - node.publish (the admin port, and peers' relay requests, which arrive there too) calls
 *   claim(instance, id) before anything else:
 *     `new`        first copy: deliver, store, then settle() with the outcome;
 *     `wait`       a copy is being stored right now: wait for that outcome and share it, so
 *                  a duplicate is never answered 200 before the message is stored;
 *     `store-only` delivered here earlier but its store failed (answered 503): store this
 *                  copy without delivering it again, then settle();
 *     `done`       stored, or delivered from the bus (stored by the node that accepted it).
 * - The bus and the backfill after a bus outage call firstDelivery(): deliver only the first
 *   copy of an id, whatever path brought the others.
 *
 * Deliberately not here, each with its own reason:
 * - Redis's per-id marker in the history append script: idempotency of the shared store
 *   across nodes (only the first copy of an id is stored and published on the bus). It
 *   answers "stored by anyone?", this ledger "delivered and stored by this node?".
 * - The relay's `touched` list: Aphlict's loop prevention by node fingerprint, checked
 *   before the ledger, so that Aphlict peers interoperate.
 * - The bus's echo prefix: a fast path that drops this node's own bus frames before they
 *   are parsed; the ledger would drop them too.
 *
 * Memory: one Map entry per id (key `instance\0id`, value `at * 4 + state`), expired from
 * the front by age (twice the history window: a late copy from a slow path is still
 * caught) and by count; a stored outcome that is still being written is never expired.
 */

const enum State {
  /** Delivered from the bus or a backfill. */
  Delivered = 0,
  /** Delivered and stored by this node's publish path. */
  Stored = 1,
  /** Delivered by this node's publish path; storing it failed. */
  Unstored = 2,
}

export interface MessageLedgerOptions {
  /** How long an id is remembered, ms (the gateway: twice the history window plus 10 s). */
  ttlMs: number;
  /** Most ids remembered; the oldest go first. */
  maxEntries: number;
  now?: () => number;
}

/** Settles a claim with the outcome of its store. */
export type Settle = (error?: Error) => void;

export type Claim =
  | { kind: 'new'; settle: Settle }
  | { kind: 'store-only'; settle: Settle }
  | { kind: 'wait'; outcome: Promise<void> }
  | { kind: 'done' };

export class MessageLedger {
  private readonly entries = new Map<string, number>();
  /** Outcomes of stores in flight, shared with duplicates that arrive meanwhile. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly options: MessageLedgerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The publish path's question; see the file comment. */
  claim(instance: string, id: string): Claim {
    const key = keyOf(instance, id);
    const pending = this.inFlight.get(key);
    if (pending) return { kind: 'wait', outcome: pending };
    const now = this.now();
    this.expire(now, 0);
    const value = this.entries.get(key);
    if (value !== undefined && value % 4 !== State.Unstored) return { kind: 'done' };
    const kind = value === undefined ? 'new' : 'store-only';
    return { kind, settle: this.startStore(key, now) };
  }

  /** The bus's and the backfill's question: true for the first copy of an id (deliver it). */
  firstDelivery(instance: string, id: string): boolean {
    const key = keyOf(instance, id);
    if (this.inFlight.has(key)) return false;
    const now = this.now();
    this.expire(now, 0);
    if (this.entries.has(key)) return false;
    this.set(key, now, State.Delivered);
    return true;
  }

  /** Whether the id is known in any state (tests, diagnostics). */
  has(instance: string, id: string): boolean {
    const key = keyOf(instance, id);
    return this.inFlight.has(key) || this.entries.has(key);
  }

  get size(): number {
    return this.entries.size;
  }

  get storing(): number {
    return this.inFlight.size;
  }

  private startStore(key: string, now: number): Settle {
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const outcome = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Handled here so a failure nobody waits for is not an unhandled rejection; waiters still see it.
    outcome.catch(() => undefined);
    this.inFlight.set(key, outcome);
    this.set(key, now, State.Unstored);
    let settled = false;
    return (error?: Error) => {
      if (settled) return;
      settled = true;
      this.inFlight.delete(key);
      // Re-inserted at the back: its age counts from the outcome.
      this.entries.delete(key);
      this.set(key, this.now(), error ? State.Unstored : State.Stored);
      if (error) reject(error);
      else resolve();
    };
  }

  private set(key: string, at: number, state: State): void {
    this.expire(at, 1);
    this.entries.set(key, at * 4 + state);
  }

  /** Drops expired ids, and the oldest until `room` more fit under maxEntries (never one being stored). */
  private expire(now: number, room: number): void {
    const minAt = now - this.options.ttlMs;
    let excess = this.entries.size - this.options.maxEntries + room;
    for (const [key, value] of this.entries) {
      if (excess <= 0 && Math.floor(value / 4) >= minAt) break;
      if (this.inFlight.has(key)) {
        // Still being stored: keep it, and stop here rather than scan past it (rare and bounded).
        break;
      }
      this.entries.delete(key);
      excess--;
    }
  }
}

function keyOf(instance: string, id: string): string {
  return `${instance}\u0000${id}`;
}
