/**
 * History keeps recent messages per instance so a client that reconnects, to this node or
 * any other, can `replay` what it missed. Bounded by count and by age, per instance.
 *
 * Ages, not timestamps, cross this interface: "the last 60 s" is measured on the store's
 * own clock (Redis's TIME for shared history), so nodes whose clocks disagree still agree
 * about what a window holds.
 */
import type { Envelope } from '@tidings/protocol';

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

export interface HistoryStore {
  /** Records a message. Resolves once it is kept (for a shared store: replayable from every node). */
  append(entry: Envelope): Promise<void>;
  /**
   * The kept messages of an instance stored within the last `ageMs` (at most the history
   * window), oldest first. Only that window is read.
   */
  recent(instance: string, ageMs: number): Promise<Envelope[]>;
  stats(instance: string): Promise<HistoryStats>;
  /** Sizes of several instances at once, in one round trip per server (metrics scrapes). */
  sizes(instances: readonly string[]): Promise<Map<string, number>>;
  close(): Promise<void>;
}

export const HISTORY_DEFAULTS = { maxMessages: 4096, maxAgeMs: 60_000 } as const;
