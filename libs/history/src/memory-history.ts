import { randomBytes } from 'node:crypto';
import type { Envelope, Position } from '@tidings/protocol';
import { HISTORY_DEFAULTS, type HistoryOptions, type HistoryStats, type HistoryStore, type ReplayAfter } from './history-store';

interface Log {
  entries: Envelope[];
  /** First live entry (expired ones before it are dropped from the front). */
  head: number;
  /** Offset of the last message appended. */
  seq: number;
  epoch: string;
}

/** Counters of instances whose log emptied, kept so their offsets go on (bounded). */
const MAX_RETIRED = 10_000;

/**
 * In-process history: one array per instance, oldest first. Appends are amortised O(1):
 * expired entries are dropped from the front with a moving head and the array is
 * compacted only when the dead prefix is large.
 *
 * Positions: each instance counts its appends (the offset) under an epoch drawn when this
 * process first kept something for it, so a restart (which loses this history) changes the
 * epoch. An instance whose messages all aged out keeps its counter in a bounded list of
 * retired ones; one forgotten even there starts over under a new epoch, which clients read
 * as "not recovered", the safe answer.
 */
export class MemoryHistory implements HistoryStore {
  private readonly logs = new Map<string, Log>();
  private readonly retired = new Map<string, { seq: number; epoch: string }>();
  private readonly maxMessages: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(options: HistoryOptions & { /** Clock, for tests. Default Date.now. */ now?: () => number } = {}) {
    this.maxMessages = options.maxMessages ?? HISTORY_DEFAULTS.maxMessages;
    this.maxAgeMs = options.maxAgeMs ?? HISTORY_DEFAULTS.maxAgeMs;
    this.now = options.now ?? Date.now;
  }

  /** Synchronous form of append, for the single-node hot path; returns the message's position. */
  add(entry: Envelope): Position {
    const log = this.logOf(entry.instance);
    const position = { offset: ++log.seq, epoch: log.epoch };
    log.entries.push({ ...entry, position });
    this.prune(entry.instance, log);
    return position;
  }

  append(entry: Envelope): Promise<Position> {
    return Promise.resolve(this.add(entry));
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

  after(instance: string, since: Position): Promise<ReplayAfter> {
    const head = this.headOf(instance);
    const log = this.logs.get(instance);
    const entries: Envelope[] = [];
    let oldest: number | null = null;
    // Another epoch's offsets mean nothing here: every kept message goes.
    const from = since.epoch === head.epoch ? since.offset : -1;
    if (log) {
      for (let i = log.head; i < log.entries.length; i++) {
        const entry = log.entries[i];
        const offset = entry.position!.offset;
        if (oldest === null) oldest = offset;
        if (offset > from) entries.push(entry);
      }
    }
    return Promise.resolve({ entries, head, recovered: isRecovered(since, head, oldest) });
  }

  head(instance: string): Promise<Position> {
    return Promise.resolve(this.headOf(instance));
  }

  statsOf(instance: string): HistoryStats {
    const log = this.logs.get(instance);
    if (!log) return { size: 0, oldestAgeMs: null };
    this.prune(instance, log);
    const size = log.entries.length - log.head;
    return { size, oldestAgeMs: size ? this.now() - log.entries[log.head].acceptedAt : null };
  }

  stats(instance: string): Promise<HistoryStats> {
    return Promise.resolve(this.statsOf(instance));
  }

  sizes(instances: readonly string[]): Promise<Map<string, number>> {
    return Promise.resolve(new Map(instances.map((i) => [i, this.statsOf(i).size])));
  }

  /** Whether the instance has kept messages now (per-instance state may be let go when not). */
  holds(instance: string): boolean {
    return this.statsOf(instance).size > 0;
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
    this.retired.clear();
    return Promise.resolve();
  }

  /** Where the instance's history is now (its epoch drawn on first use). */
  private headOf(instance: string): Position {
    const log = this.logs.get(instance);
    if (log) {
      this.prune(instance, log);
      const live = this.logs.get(instance) ?? this.retired.get(instance);
      if (live) return { offset: live.seq, epoch: live.epoch };
    }
    let counter = this.retired.get(instance);
    if (!counter) this.retire(instance, (counter = { seq: 0, epoch: newEpoch() }));
    return { offset: counter.seq, epoch: counter.epoch };
  }

  private logOf(instance: string): Log {
    let log = this.logs.get(instance);
    if (log) return log;
    const counter = this.retired.get(instance);
    this.retired.delete(instance);
    log = { entries: [], head: 0, seq: counter?.seq ?? 0, epoch: counter?.epoch ?? newEpoch() };
    this.logs.set(instance, log);
    return log;
  }

  private retire(instance: string, counter: { seq: number; epoch: string }): void {
    this.retired.delete(instance);
    this.retired.set(instance, counter);
    if (this.retired.size > MAX_RETIRED) this.retired.delete(this.retired.keys().next().value as string);
  }

  private prune(instance: string, log: Log): void {
    const { entries } = log;
    const minAt = this.now() - this.maxAgeMs;
    let head = Math.max(log.head, entries.length - this.maxMessages);
    while (head < entries.length && entries[head].acceptedAt < minAt) head++;
    if (head === entries.length) {
      // Empty the log too: callers keep using the object they passed in after this returns.
      log.entries = [];
      log.head = 0;
      this.logs.delete(instance);
      this.retire(instance, { seq: log.seq, epoch: log.epoch });
      return;
    }
    if (head > 1024 && head * 2 > entries.length) {
      log.entries = entries.slice(head);
      head = 0;
    }
    log.head = head;
  }
}

/**
 * Whether a client at `since` provably has every message after it: same epoch, and the
 * message right after it is still kept (or none came after it).
 */
export function isRecovered(since: Position, head: Position, oldestKept: number | null): boolean {
  if (since.epoch !== head.epoch || since.offset > head.offset) return false;
  if (since.offset === head.offset) return true;
  return oldestKept !== null && oldestKept <= since.offset + 1;
}

function newEpoch(): string {
  return randomBytes(8).toString('hex');
}
