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

/**
 * An instance's kept messages within an age, and where its history is, read at once: every
 * replay and backfill is answered from one (within() by age, after() by position), so
 * replays that arrive together can share one read.
 */
export interface HistoryWindow {
  /** Kept messages stored within the age asked for, oldest first, each with its position. */
  entries: WindowEntry[];
  /** Where the instance's history is now (the last offset, and the epoch). */
  head: Position;
  /** Offset of the oldest message kept at all (null: none), even if older than the age asked for. */
  oldestOffset: number | null;
}

export interface WindowEntry extends Envelope {
  position: Position;
  /** How long ago it was stored, on the store's clock. */
  ageMs: number;
}

export interface HistoryStore {
  /**
   * Records a message. Resolves once it is kept (for a shared store: replayable from every
   * node), with its position; null when a store shared by nodes already held its id.
   */
  append(entry: Envelope): Promise<Position | null>;
  /** The kept messages stored within the last `ageMs` (at most the history window); only that is read. */
  window(instance: string, ageMs: number): Promise<HistoryWindow>;
  /** Where the instance's history is now; draws its epoch if it has none yet. */
  head(instance: string): Promise<Position>;
  stats(instance: string): Promise<HistoryStats>;
  /** Sizes of several instances at once, in one round trip per server (metrics scrapes). */
  sizes(instances: readonly string[]): Promise<Map<string, number>>;
  close(): Promise<void>;
}

export const HISTORY_DEFAULTS = { maxMessages: 4096, maxAgeMs: 60_000 } as const;

/** The window's messages stored within the last `ageMs`. */
export function within(window: HistoryWindow, ageMs: number): Envelope[] {
  return window.entries.filter((e) => e.ageMs <= ageMs);
}

/**
 * What a client at `since` is owed: the messages after it (every kept one when its epoch is
 * not this history's), and whether that is provably all. Read from a full window.
 */
export function after(window: HistoryWindow, since: Position): ReplayAfter {
  const { head } = window;
  const from = since.epoch === head.epoch ? since.offset : -1;
  return { entries: window.entries.filter((e) => e.position.offset > from), head, recovered: isRecovered(since, head, window.oldestOffset) };
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

/** The messages of an instance stored within the last `ageMs` (one window read). */
export async function readRecent(store: HistoryStore, instance: string, ageMs: number): Promise<Envelope[]> {
  return within(await store.window(instance, ageMs), ageMs);
}

/** What a client at `since` is owed (one read of the whole window). */
export async function readAfter(store: HistoryStore, instance: string, since: Position): Promise<ReplayAfter> {
  return after(await store.window(instance, Number.POSITIVE_INFINITY), since);
}

const indexes = new WeakMap<HistoryWindow, Map<string, WindowEntry[]>>();

/**
 * The window's messages addressed to any of `phids`, each once, oldest first: looked up
 * per PHID in an index built once per window (shared by every replay answered from it), so
 * a replay costs what its socket's subscriptions match, not the whole window.
 */
export function addressedTo(window: HistoryWindow, phids: Iterable<string>): WindowEntry[] {
  let index = indexes.get(window);
  if (!index) {
    index = new Map();
    for (const entry of window.entries) {
      for (const phid of entry.subscribers) {
        const list = index.get(phid);
        if (list) {
          if (list[list.length - 1] !== entry) list.push(entry);
        } else index.set(phid, [entry]);
      }
    }
    indexes.set(window, index);
  }
  const found = new Set<WindowEntry>();
  for (const phid of phids) for (const entry of index.get(phid) ?? []) found.add(entry);
  return [...found].sort((a, b) => a.position.offset - b.position.offset);
}
