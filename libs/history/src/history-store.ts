/**
 * History keeps recent messages per instance so a client that reconnects, to this node or
 * any other, can `replay` what it missed. Bounded by count and by age, per instance.
 *
 * Ages, not timestamps, cross this interface: "the last 60 s" is measured on the store's
 * own clock (Redis's TIME for shared history), so nodes whose clocks disagree still agree
 * about what a window holds.
 */
import type { Envelope, Position } from '@tidings/protocol';

export interface HistoryStats {
  /** Messages kept for the instance. */
  size: number;
  /** Age in ms of the oldest kept message, on the store's clock, or null when empty. */
  oldestAgeMs: number | null;
}

export interface HistoryOptions {
  /** Messages kept per instance. Default 4096 (Aphlict). */
  maxMessages?: number;
  /** Milliseconds a message is kept. Default 60,000 (Aphlict). */
  maxAgeMs?: number;
}

/** What a replay by position finds. */
export interface ReplayAfter {
  /** The kept messages after the position, oldest first, each with its `position`. */
  entries: Envelope[];
  /** Where the instance's history is now (the last offset, and the epoch). */
  head: Position;
  /**
   * True only when the epoch is the client's and nothing after its offset has left
   * history (aged out or trimmed): the client then provably has every message.
   */
  recovered: boolean;
}

export interface HistoryStore {
  /**
   * Records a message. Resolves once it is kept (for a shared store: replayable from every
   * node), with its position; null when a store shared by nodes already held its id.
   */
  append(entry: Envelope): Promise<Position | null>;
  /**
   * The kept messages of an instance stored within the last `ageMs` (at most the history
   * window), oldest first. Only that window is read.
   */
  recent(instance: string, ageMs: number): Promise<Envelope[]>;
  /** The kept messages after a position, and whether that is provably all of them. */
  after(instance: string, since: Position): Promise<ReplayAfter>;
  /** Where the instance's history is now; draws its epoch if it has none yet. */
  head(instance: string): Promise<Position>;
  stats(instance: string): Promise<HistoryStats>;
  /** Sizes of several instances at once, in one round trip per server (metrics scrapes). */
  sizes(instances: readonly string[]): Promise<Map<string, number>>;
  close(): Promise<void>;
}

export const HISTORY_DEFAULTS = { maxMessages: 4096, maxAgeMs: 60_000 } as const;
