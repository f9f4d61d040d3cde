import type { Envelope } from '@tidings/protocol';
import { HISTORY_DEFAULTS, type HistoryOptions, type HistoryStats, type HistoryStore } from './history-store';

/**
 * In-process history: one array per instance, oldest first. Appends are amortised O(1):
 * expired entries are dropped from the front with a moving head and the array is
 * compacted only when the dead prefix is large.
 */
export class MemoryHistory implements HistoryStore {
  private readonly logs = new Map<string, { entries: Envelope[]; head: number }>();
  private readonly maxMessages: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(options: HistoryOptions & { /** Clock, for tests. Default Date.now. */ now?: () => number } = {}) {
    this.maxMessages = options.maxMessages ?? HISTORY_DEFAULTS.maxMessages;
    this.maxAgeMs = options.maxAgeMs ?? HISTORY_DEFAULTS.maxAgeMs;
    this.now = options.now ?? Date.now;
  }

  /** Synchronous form of append, for the single-node hot path. */
  add(entry: Envelope): void {
    let log = this.logs.get(entry.instance);
    if (!log) this.logs.set(entry.instance, (log = { entries: [], head: 0 }));
    log.entries.push(entry);
    this.prune(entry.instance, log);
  }

  append(entry: Envelope): Promise<void> {
    this.add(entry);
    return Promise.resolve();
  }

  entriesSince(instance: string, sinceMs: number): Envelope[] {
    const log = this.logs.get(instance);
    if (!log) return [];
    this.prune(instance, log);
    const out: Envelope[] = [];
    for (let i = log.head; i < log.entries.length; i++) {
      const entry = log.entries[i];
      if (entry.acceptedAt >= sinceMs) out.push(entry);
    }
    return out;
  }

  recent(instance: string, ageMs: number): Promise<Envelope[]> {
    return Promise.resolve(this.entriesSince(instance, this.now() - Math.min(ageMs, this.maxAgeMs)));
  }

  statsOf(instance: string): HistoryStats {
    const log = this.logs.get(instance);
    if (!log) return { size: 0, oldestAgeMs: null };
    this.prune(instance, log);
    const size = log.entries.length - log.head;
    return { size, oldestAgeMs: size ? this.now() - log.entries[log.head].acceptedAt : null };
  }

  sizes(instances: readonly string[]): Promise<Map<string, number>> {
    return Promise.resolve(new Map(instances.map((i) => [i, this.statsOf(i).size])));
  }

  /** Whether the instance has kept messages now (per-instance state may be let go when not). */
  holds(instance: string): boolean {
    return this.statsOf(instance).size > 0;
  }

  stats(instance: string): Promise<HistoryStats> {
    return Promise.resolve(this.statsOf(instance));
  }

  /** Messages kept over all instances. */
  totalSize(): number {
    let total = 0;
    for (const [instance, log] of this.logs) {
      this.prune(instance, log);
      total += log.entries.length - log.head;
    }
    return total;
  }

  close(): Promise<void> {
    this.logs.clear();
    return Promise.resolve();
  }

  private prune(instance: string, log: { entries: Envelope[]; head: number }): void {
    const { entries } = log;
    const minAt = this.now() - this.maxAgeMs;
    let head = Math.max(log.head, entries.length - this.maxMessages);
    while (head < entries.length && entries[head].acceptedAt < minAt) head++;
    if (head === entries.length) {
      // Empty the log too: callers keep using the object they passed in after this returns.
      log.entries = [];
      log.head = 0;
      this.logs.delete(instance);
      return;
    }
    if (head > 1024 && head * 2 > entries.length) {
      log.entries = entries.slice(head);
      head = 0;
    }
    log.head = head;
  }
}
