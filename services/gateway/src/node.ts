/**
 * One gateway node's message path, once per message: accept, check `touched`, give it an
 * id, drop it if seen, record it in history, deliver to local sockets, hand it to the bus
 * and the relay, answer. Messages from the bus are delivered locally and go no further.
 * Transports (admin HTTP, client sockets) sit around this and hold no delivery logic.
 */
import {
  createFingerprint,
  createMessageId,
  envelopeOf,
  type Envelope,
  type Logger,
  type Notification,
} from '@tidings/protocol';
import { Hub, type HubMember } from '@tidings/hub';
import type { HistoryStore } from '@tidings/history';
import type { Bus, BusMessage } from '@tidings/bus';
import type { Relay } from '@tidings/relay';
import { Counters } from './counters';
import { MessageLedger, type Settle } from './message-ledger';

export interface NodeOptions {
  history: HistoryStore;
  /** Window of history, ms: replays and backfills reach this far back. */
  historyMaxAgeMs: number;
  maxSubscriptionsPerSocket: number;
  logger: Logger;
  bus?: Bus;
  relay?: Relay;
  /** Fixed fingerprint (tests); random by default. */
  fingerprint?: string;
  now?: () => number;
}

export type PublishResult =
  | { status: 'accepted'; id: string }
  | { status: 'touched' }
  | { status: 'duplicate'; id: string };

/** Thrown when a message could not be made durable (shared history unreachable). */
export class HistoryUnavailableError extends Error {
  override name = 'HistoryUnavailableError';
}

/** Another transport's delivery (Socket.IO rooms) beside the raw-socket hub. */
export interface ExtraDelivery {
  deliver(message: Envelope): number;
  /** Instances this transport has sockets for now (backfill covers them too). */
  instances(): Iterable<string>;
}

const BACKFILL_RETRY_MIN_MS = 250;
const BACKFILL_RETRY_MAX_MS = 2_000;

export class TidingsNode {
  readonly fingerprint: string;
  readonly hub: Hub<HubMember>;
  readonly counters = new Counters();
  readonly history: HistoryStore;
  readonly bus?: Bus;
  readonly relay?: Relay;
  readonly startedAt: number;
  /** Which ids this node has delivered and stored: the one place duplicates are decided. */
  private readonly ledger: MessageLedger;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly historyMaxAgeMs: number;
  private readonly totals = new Map<string, number>();
  private readonly extra: ExtraDelivery[] = [];
  /** Earliest time (epoch ms) a backfill is owed from; null when none is. */
  private backfillFrom: number | null = null;
  /** When that debt began (epoch ms): past the history window, whatever it held has aged out. */
  private backfillOwedSince = 0;
  private backfillRetry?: NodeJS.Timeout;

  constructor(options: NodeOptions) {
    this.fingerprint = options.fingerprint ?? createFingerprint();
    this.history = options.history;
    this.bus = options.bus;
    this.relay = options.relay;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.historyMaxAgeMs = options.historyMaxAgeMs;
    this.startedAt = this.now();
    this.hub = new Hub({ maxSubscriptionsPerMember: options.maxSubscriptionsPerSocket });
    // Remember ids well past the history window, so a late copy from a slow path is still caught.
    this.ledger = new MessageLedger({ ttlMs: 2 * options.historyMaxAgeMs + 10_000, maxEntries: 1_000_000, now: this.now });
    this.bus?.on('message', (message) => this.onBusMessage(message));
    this.bus?.on('up', (info) => {
      if (info.reconnect) this.startBackfill(info.downSince);
    });
  }

  /** Adds another transport's delivery to every message (Socket.IO). */
  addDelivery(delivery: ExtraDelivery): void {
    this.extra.push(delivery);
  }

  /**
   * Accepts a message from a publisher or a peer. Resolves once it is recorded in history
   * (shared history with Redis: replayable from every node); local delivery, bus and relay
   * have been started by then. A copy of an id that is being stored waits for that store
   * and shares its outcome, so no answer says more than was done. Rejects with
   * HistoryUnavailableError when the message could not be stored. `assignedId` is the id a
   * Tidings peer gave a message that had no `uniqueID`.
   */
  async publish(instance: string, message: Notification, assignedId?: string): Promise<PublishResult> {
    this.counters.messagesIn++;
    const touched = message.touched ?? [];
    if (touched.includes(this.fingerprint)) {
      this.counters.touchedDropped++;
      return { status: 'touched' };
    }
    const id =
      assignedId ?? (typeof message.uniqueID === 'string' && message.uniqueID !== '' ? message.uniqueID : createMessageId());
    const claim = this.ledger.claim(instance, id);
    if (claim.kind !== 'new') {
      this.counters.duplicatesDropped++;
      if (claim.kind === 'wait') await claim.outcome;
      else if (claim.kind === 'store-only') {
        // Delivered here before, but its store failed: store this copy, deliver nothing again.
        message.touched = [...touched, this.fingerprint];
        await this.store(envelopeOf(instance, id, message, this.now()), claim.settle);
      }
      return { status: 'duplicate', id };
    }
    // Appending keeps the object's key order, so the frame matches Aphlict's byte for byte.
    message.touched = [...touched, this.fingerprint];
    const envelope = envelopeOf(instance, id, message, this.now());
    const stored = this.store(envelope, claim.settle);
    this.deliver(envelope);
    // A bus failure is logged, not thrown: the bus has its own state in /status/ and
    // readiness. Handled where the promise is made, whatever the store does meanwhile.
    if (this.bus) {
      this.publishToBus(this.bus, envelope).catch((err: Error) => this.logger.warn({ err: err.message, id, instance }, 'bus publish failed'));
    }
    // Answered only once the relay requests are written too: a node killed right after its
    // 200 has still sent the message on to its peers (Aphlict answers first).
    const relayed = this.relay?.send(envelope, message.touched);
    await stored;
    await relayed;
    return { status: 'accepted', id };
  }

  /** Appends to history and settles the ledger's claim with the outcome. */
  private async store(envelope: Envelope, settle: Settle): Promise<void> {
    try {
      await this.appendToHistory(envelope);
    } catch (err) {
      const error = new HistoryUnavailableError(`history: ${(err as Error).message}`);
      settle(error);
      throw error;
    }
    settle();
  }

  /** Appends to history, timing it for the metrics when anyone listens (with Redis this is the ack latency). */
  private appendToHistory(envelope: Envelope): Promise<void> {
    const observers = this.counters.historyAppendObservers;
    if (observers.length === 0) return this.history.append(envelope);
    const started = performance.now();
    return this.history.append(envelope).then(() => {
      const ms = performance.now() - started;
      for (const observe of observers) observe(ms);
    });
  }

  /** Publishes to the bus, timing it for the metrics when anyone listens. */
  private publishToBus(bus: Bus, envelope: Envelope): Promise<void> {
    const observers = this.counters.busPublishObservers;
    if (observers.length === 0) return bus.publish(envelope);
    const started = performance.now();
    return bus.publish(envelope).then(() => {
      const ms = performance.now() - started;
      for (const observe of observers) observe(ms);
    });
  }

  /** Sends a message to this node's sockets that subscribed to any of its PHIDs. */
  deliver(envelope: Envelope): number {
    let sent = this.hub.deliver(envelope.instance, envelope.subscribers, envelope.frame);
    for (const d of this.extra) sent += d.deliver(envelope);
    this.counters.messagesOut += sent;
    return sent;
  }

  /** Resends the kept messages newer than `ageMs` that match the member's subscriptions. */
  async replay(member: HubMember, ageMs: number): Promise<number> {
    const entries = await this.replayEntries(member.instance, ageMs, (phids) => this.hub.isSubscribedToAny(member, phids));
    for (const entry of entries) {
      const frame = Buffer.from(entry.frame);
      this.counters.replayBytes += frame.length;
      member.send(frame);
      // A long replay waits for the socket to drain instead of tripping the slow-reader bound.
      const writable = member.whenWritable?.();
      if (writable) await writable;
    }
    return entries.length;
  }

  /**
   * The kept messages of an instance newer than `ageMs`, oldest first, that `wants` accepts
   * by their PHIDs: what a replay sends, on either transport. Only that window is read from
   * history; its cost is counted (entries read, entries kept, read time).
   */
  async replayEntries(instance: string, ageMs: number, wants: (phids: readonly string[]) => boolean): Promise<Envelope[]> {
    this.counters.replays++;
    const started = performance.now();
    const entries = await this.history.recent(instance, ageMs);
    const ms = performance.now() - started;
    for (const observe of this.counters.replayReadObservers) observe(ms);
    this.counters.replayEntriesRead += entries.length;
    const wanted = entries.filter((entry) => wants(entry.subscribers));
    this.counters.replayEntriesSent += wanted.length;
    return wanted;
  }

  /** Counts a new connection for an instance (Aphlict's clients.total). */
  connected(instance: string): void {
    this.totals.set(instance, (this.totals.get(instance) ?? 0) + 1);
  }

  totalConnections(instance: string): number {
    return this.totals.get(instance) ?? 0;
  }

  private onBusMessage(message: BusMessage): void {
    if (!this.ledger.firstDelivery(message.instance, message.id)) {
      this.counters.duplicatesDropped++;
      return;
    }
    this.counters.busIn++;
    this.deliver(message);
  }

  /**
   * After the bus comes back, delivers from shared history what other nodes accepted while
   * it was down; seen ids keep it from sending anything twice. The bus's subscription can
   * be back before the history connection is (both reconnect on their own after a Redis
   * restart), so a failed read is retried while the bus stays up, for as long as the
   * history window (after that, what was owed has aged out of history anyway); if the bus
   * drops again, the next reconnect's backfill starts from the earliest time still owed.
   */
  private startBackfill(downSince: number | null): void {
    const from = downSince === null ? this.now() - this.historyMaxAgeMs : downSince - 5_000;
    if (this.backfillFrom === null) this.backfillOwedSince = this.now();
    this.backfillFrom = this.backfillFrom === null ? from : Math.min(this.backfillFrom, from);
    clearTimeout(this.backfillRetry);
    void this.backfill(0);
  }

  private async backfill(attempt: number): Promise<void> {
    const from = this.backfillFrom;
    // Nothing owed, or the bus dropped again: the next reconnect starts it over.
    if (from === null || (this.bus && !this.bus.isConnected)) return;
    let delivered = 0;
    try {
      const instances = new Set(this.hub.instances());
      for (const d of this.extra) for (const instance of d.instances()) instances.add(instance);
      for (const instance of instances) {
        // The debt as an age on this node's clock; history measures it on its own clock.
        for (const entry of await this.history.recent(instance, this.now() - from)) {
          if (!this.ledger.firstDelivery(entry.instance, entry.id)) continue;
          this.deliver(entry);
          delivered++;
        }
      }
      // Another outage may have pushed the debt further back meanwhile: that one is still owed.
      if (this.backfillFrom === from) this.backfillFrom = null;
      this.logger.info({ delivered, from, attempt }, 'bus back: backfilled from shared history');
    } catch (err) {
      const message = (err as Error).message;
      if (this.now() - this.backfillOwedSince >= this.historyMaxAgeMs) {
        this.backfillFrom = null;
        this.logger.error({ err: message, from, attempt }, 'bus back: backfill failed for longer than the history window; messages may be missing on this node');
        return;
      }
      if (this.bus && !this.bus.isConnected) {
        // The next reconnect backfills from the earliest time still owed.
        this.logger.warn({ err: message, from, attempt }, 'bus back: backfill failed; the bus is down again, retrying once it is back');
        return;
      }
      const delayMs = Math.min(BACKFILL_RETRY_MAX_MS, BACKFILL_RETRY_MIN_MS * 2 ** attempt);
      this.logger.warn({ err: message, from, attempt, retryInMs: delayMs }, 'bus back: backfill from shared history failed, retrying');
      clearTimeout(this.backfillRetry);
      this.backfillRetry = setTimeout(() => void this.backfill(attempt + 1), delayMs);
      this.backfillRetry.unref();
    }
  }
}
