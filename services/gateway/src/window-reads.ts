/**
 * Replays (and backfills) that arrive together share one history read per instance. While
 * a read of an instance is in flight, new requests for it wait and are answered by the next
 * read, sent when that one returns, for the widest age any of them asked. A reconnect storm
 * of thousands of replays then costs about one read per round trip per instance, not one
 * each, and decodes each message once. Every request is answered by a read that began after
 * it arrived, so none misses a message stored before it asked.
 */
import type { HistoryStore, HistoryWindow } from '@tidings/history';

interface Batch {
  ageMs: number;
  waiters: { resolve(window: HistoryWindow): void; reject(err: Error): void }[];
}

interface InstanceReads {
  /** A read of this instance is in flight. */
  busy: boolean;
  /** Requests waiting for the next read. */
  next?: Batch;
}

export class WindowReads {
  private readonly instances = new Map<string, InstanceReads>();
  /** Reads sent to history, and requests answered (requests / reads: how much was shared). */
  readonly counts = { reads: 0, requests: 0 };

  constructor(private readonly history: HistoryStore) {}

  /** The instance's window of at least `ageMs`, shared with the requests that arrive with it. */
  read(instance: string, ageMs: number): Promise<HistoryWindow> {
    this.counts.requests++;
    let state = this.instances.get(instance);
    if (!state) this.instances.set(instance, (state = { busy: false }));
    let batch = state.next;
    if (batch) batch.ageMs = Math.max(batch.ageMs, ageMs);
    else {
      batch = state.next = { ageMs, waiters: [] };
      // The first request of an idle instance: gather the others of this turn first.
      if (!state.busy) {
        state.busy = true;
        setImmediate(() => this.send(instance, state!));
      }
    }
    return new Promise<HistoryWindow>((resolve, reject) => batch!.waiters.push({ resolve, reject }));
  }

  private send(instance: string, state: InstanceReads): void {
    const batch = state.next;
    state.next = undefined;
    if (!batch) {
      state.busy = false;
      this.instances.delete(instance);
      return;
    }
    this.counts.reads++;
    this.history.window(instance, batch.ageMs).then(
      (window) => {
        for (const w of batch.waiters) w.resolve(window);
      },
      (err: Error) => {
        for (const w of batch.waiters) w.reject(err);
      },
    ).finally(() => this.send(instance, state));
  }
}
