/**
 * History keeps recent messages per instance so a client that reconnects, to this node or
 * any other, can `replay` what it missed. Bounded by count and by age, per instance.
 */
import type { Envelope } from '@tidings/protocol';

export interface HistoryStats {
  /** Messages kept for the instance. */
  size: number;
  /** Epoch ms of the oldest kept message, or null when empty. */
  oldestAt: number | null;
}

export interface HistoryOptions {
  /** Messages kept per instance. Default 4096 (Aphlict). */
  maxMessages?: number;
  /** Milliseconds a message is kept. Default 60,000 (Aphlict). */
  maxAgeMs?: number;
  /** Clock, for tests. Default Date.now. */
  now?: () => number;
}

export interface HistoryStore {
  /** Records a message. Resolves once it is kept (for a shared store: replayable from every node). */
  append(entry: Envelope): Promise<void>;
  /** The kept messages of an instance accepted at or after `sinceMs` (epoch ms), oldest first. */
  since(instance: string, sinceMs: number): Promise<Envelope[]>;
  stats(instance: string): Promise<HistoryStats>;
  close(): Promise<void>;
}

export const HISTORY_DEFAULTS = { maxMessages: 4096, maxAgeMs: 60_000 } as const;
