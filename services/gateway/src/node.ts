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
  framedWithPosition,
  replayedFrame,
  type Envelope,
  type ReplayRequest,
  type Position,
  type Logger,
  type Notification,
} from '@tidings/protocol';
import { Hub, SubscriptionBudget, type HubMember } from '@tidings/hub';
import { addressedTo, isRecovered, within, type HistoryStore } from '@tidings/history';
import { WindowReads } from './window-reads';
import type { Bus, BusMessage } from '@tidings/bus';
import type { Relay } from '@tidings/relay';
import { Counters } from './counters';
import { MessageLedger, type Settle } from './message-ledger';
import { InstanceRegistry } from './instances';

export interface NodeOptions {
  history: HistoryStore;
  /** `limits.maxInstances`: instances this node holds state for at once. Default 10,000. */
  maxInstances?: number;
  /** Window of history, ms: replays and backfills reach this far back. */
  historyMaxAgeMs: number;
  maxSubscriptionsPerSocket: number;
  /** `limits.maxSubscriptionsPerNode`, over every transport. Default 1,000,000. */
  maxSubscriptionsPerNode?: number;
  logger: Logger;
  bus?: Bus;
  relay?: Relay;
  /** Fixed fingerprint (tests); random by default. */
  fingerprint?: string;
  now?: () => number;
}

export interface ReplayResult {
  entries: Envelope[];
  /** For a replay by position: whether the client provably has every message, and where history is now. */
  after?: { recovered: boolean; head: Position };
}

export type PublishResult =
  | { status: 'accepted'; id: string }
  | { status: 'touched' }
  | { status: 'duplicate'; id: string };

/** Thrown when a publish would open an instance past `limits.maxInstances` (memory history). */
export class InstanceLimitError extends Error {
  override name = 'InstanceLimitError';
}

/** Thrown when a message could not be made durable (shared history unreachable). */
export class HistoryUnavailableError extends Error {
  override name = 'HistoryUnavailableError';
}

/** Which sockets a delivery is for: all, only those without positions, or only those with. */
export type Audience = 'all' | 'plain' | 'positioned';

/** Another transport's delivery (Socket.IO rooms) beside the raw-socket hub. */
export interface ExtraDelivery {
  /** To the sockets of `audience`; those with positions on get `message.position` too. */
  deliver(message: Envelope, audience: Audience): number;
  /** Instances this transport has sockets for now (backfill covers them too). */
  instances(): Iterable<string>;
}

const BACKFILL_RETRY_MIN_MS = 250;
const BACKFILL_RETRY_MAX_MS = 2_000;

export class TidingsNode {
  readonly fingerprint: string;
  readonly hub: Hub<HubMember>;
  /** Subscriptions of every transport on this node, against limits.maxSubscriptionsPerNode. */
  readonly subscriptions: SubscriptionBudget;
  readonly counters = new Counters();
  readonly history: HistoryStore;
  /** History reads of replays and backfills, shared by those that arrive together. */
  readonly reads: WindowReads;
  readonly bus?: Bus;
  readonly relay?: Relay;
  readonly startedAt: number;
  /** Which ids this node has delivered and stored: the one place duplicates are decided. */
  private readonly ledger: MessageLedger;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly historyMaxAgeMs: number;
  /** Live instances, their clients.total, and the bound on how many. */
  readonly instances: InstanceRegistry;
  private readonly extra: ExtraDelivery[] = [];
  /** Earliest time (epoch ms) a backfill is owed from; null when none is. */
  private backfillFrom: number | null = null;
  /** When that debt began (epoch ms): past the history window, whatever it held has aged out. */
  private backfillOwedSince = 0;
  private backfillRetry?: NodeJS.Timeout;

  constructor(options: NodeOptions) {
    this.fingerprint = options.fingerprint ?? createFingerprint();
    this.history = options.history;
    this.reads = new WindowReads(options.history);
    this.bus = options.bus;
    this.relay = options.relay;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.historyMaxAgeMs = options.historyMaxAgeMs;
    this.startedAt = this.now();
    const holds = (options.history as { holds?: (instance: string) => boolean }).holds;
    this.instances = new InstanceRegistry({
      maxInstances: options.maxInstances ?? 10_000,
      // Memory history is per-instance state on this node; shared history is not.
      holdsHistory: holds ? (instance) => holds.call(options.history, instance) : undefined,
      now: this.now,
    });
    this.subscriptions = new SubscriptionBudget(options.maxSubscriptionsPerNode ?? 1_000_000);
    this.hub = new Hub({ maxSubscriptionsPerMember: options.maxSubscriptionsPerSocket, budget: this.subscriptions });
    // Remember ids well past the history window, so a late copy from a slow path is still caught.
    this.ledger = new MessageLedger({ ttlMs: 2 * options.historyMaxAgeMs + 10_000, maxEntries: 1_000_000, now: this.now });
    // A bus that routes by interest learns when (instance, PHID) gains its first local
    // subscriber and loses its last, over every transport (Socket.IO reports its rooms).
    if (this.bus?.watch) {
      this.hub.on('first-subscriber', (instance, phid) => this.interestChanged(instance, phid, 1));
      this.hub.on('last-unsubscribed', (instance, phid) => this.interestChanged(instance, phid, -1));
    }
    this.bus?.on('message', (message) => this.onBusMessage(message));
    this.bus?.on('echo', (message) => this.onBusEcho(message));
    this.bus?.on('up', (info) => {
      if (info.reconnect) this.startBackfill(info.downSince);
    });
    this.positionsFromBus = !!this.bus?.isPublishedByHistory;
  }

  /**
   * Sockets that asked for positions get each message with its place in history. With a
   * bus whose store publishes (Redis), they get every message from the bus, this node's own
   * as their echo: one stream in offset order, the positions assigned by the store. Without
   * one, this node's history assigns them as it stores.
   */
  private readonly positionsFromBus: boolean;
  private positionMembers = 0;
  /** Called when positioned sockets must replay from their position (the bus was down). */
  readonly resyncHandlers: (() => void)[] = [];

  /** Local subscribers per (instance, PHID) over every transport, kept only for a bus that routes by interest. */
  private readonly interest = new Map<string, number>();

  /** A transport's first subscriber of (instance, PHID) came (+1), or its last left (-1). */
  interestChanged(instance: string, phid: string, delta: 1 | -1): void {
    const bus = this.bus;
    if (!bus?.watch || !bus.unwatch) return;
    const key = `${instance}\u0000${phid}`;
    const held = (this.interest.get(key) ?? 0) + delta;
    if (held > 0) {
      this.interest.set(key, held);
      if (held === 1 && delta === 1) bus.watch(instance, phid);
    } else {
      this.interest.delete(key);
      bus.unwatch(instance, phid);
    }
  }

  /**
   * Resolves once the subscriptions made so far route messages to this node (at once with
   * a broadcast bus, or none): a socket's subscribe is answered only then.
   */
  routed(): Promise<void> | undefined {
    return this.bus?.settled?.();
  }

  /** A socket turned positions on (+1), or one that had them left or turned them off (-1). */
  positionsChanged(delta: 1 | -1): void {
    this.positionMembers = Math.max(0, this.positionMembers + delta);
    if (this.bus && this.positionsFromBus) this.bus.echoes = this.positionMembers > 0;
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
    if (!this.instances.admitStore(instance)) {
      throw new InstanceLimitError(`this node holds state for ${this.instances.size} instances (limits.maxInstances)`);
    }
    const id =
      assignedId ?? (typeof message.uniqueID === 'string' && message.uniqueID !== '' ? message.uniqueID : createMessageId());
    // Serialised before the claim, so a message that cannot be (too deep for JSON.stringify)
    // leaves no claim that a later copy of its id would wait on. Appending keeps the object's
    // key order, so the frame matches Aphlict's byte for byte.
    message.touched = [...touched, this.fingerprint];
    const envelope = envelopeOf(instance, id, message, this.now());
    const claim = this.ledger.claim(instance, id);
    if (claim.kind !== 'new') {
      this.counters.duplicatesDropped++;
      if (claim.kind === 'wait') await claim.outcome;
      // Delivered here before, but its store failed: store this copy, deliver nothing again.
      else if (claim.kind === 'store-only') await this.store(envelope, claim.settle);
      return { status: 'duplicate', id };
    }
    const stored = this.store(envelope, claim.settle);
    // Awaited below; handled here too, so a failure before that await is never unhandled.
    stored.catch(() => undefined);
    const positionedHere = this.positionMembers > 0 && !this.positionsFromBus;
    this.deliver(envelope, this.positionMembers > 0 ? 'plain' : 'all');
    // A bus failure is logged, not thrown: the bus has its own state in /status/ and
    // readiness. Handled where the promise is made, whatever the store does meanwhile. With
    // Redis history the append script publishes (store() above): nothing to send here.
    if (this.bus && !this.bus.isPublishedByHistory) {
      this.publishToBus(this.bus, envelope).catch((err: Error) => this.logger.warn({ err: err.message, id, instance }, 'bus publish failed'));
    }
    // Answered only once the relay requests are written too: a node killed right after its
    // 200 has still sent the message on to its peers (Aphlict answers first).
    const relayed = this.relay?.send(envelope, message.touched);
    const position = await stored;
    // Positioned sockets, without a store that publishes: once history gave it its place.
    if (positionedHere && position) this.deliver({ ...envelope, position }, 'positioned');
    await relayed;
    return { status: 'accepted', id };
  }

  /** Appends to history and settles the ledger's claim with the outcome; resolves with the position. */
  private async store(envelope: Envelope, settle: Settle): Promise<Position | null> {
    let position: Position | null;
    try {
      position = await this.appendToHistory(envelope);
    } catch (err) {
      const error = new HistoryUnavailableError(`history: ${(err as Error).message}`);
      settle(error);
      throw error;
    }
    settle();
    return position;
  }

  /** Appends to history, timing it for the metrics when anyone listens (with Redis this is the ack latency). */
  private appendToHistory(envelope: Envelope): Promise<Position | null> {
    const observers = this.counters.historyAppendObservers;
    if (observers.length === 0) return this.history.append(envelope);
    const started = performance.now();
    return this.history.append(envelope).then((position) => {
      const ms = performance.now() - started;
      for (const observe of observers) observe(ms);
      return position;
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
  deliver(envelope: Envelope, audience: Audience = 'all'): number {
    const positioned = envelope.position && this.positionMembers > 0 ? framedWithPosition(envelope.frame, envelope.position) : undefined;
    let sent =
      audience === 'all' && positioned === undefined
        ? this.hub.deliver(envelope.instance, envelope.subscribers, envelope.frame)
        : this.hub.deliver(envelope.instance, envelope.subscribers, envelope.frame, { positioned, only: audience === 'all' ? undefined : audience });
    for (const d of this.extra) sent += d.deliver(envelope, audience);
    this.counters.messagesOut += sent;
    return sent;
  }

  /**
   * Resends to a raw socket the kept messages a replay asks for (newer than an age, or after
   * a position) that match its subscriptions, oldest first; a replay by position ends with
   * the `replayed` frame. Frames carry positions when the socket asked for them, and always
   * in a replay by position.
   */
  async replay(member: HubMember, request: ReplayRequest): Promise<number> {
    const { entries, after } = await this.replayFor(member.instance, request, this.hub.subscriptionsOf(member));
    const positioned = member.positions === true || request.kind === 'since';
    for (const entry of entries) {
      const frame = Buffer.from(positioned && entry.position ? framedWithPosition(entry.frame, entry.position) : entry.frame);
      this.counters.replayBytes += frame.length;
      member.send(frame);
      // A long replay waits for the socket to drain instead of tripping the slow-reader bound.
      const writable = member.whenWritable?.();
      if (writable) await writable;
    }
    if (after) member.send(Buffer.from(replayedFrame({ recovered: after.recovered, ...after.head })));
    return entries.length;
  }

  /**
   * What a replay sends, on either transport: the kept messages of an instance newer than an
   * age (Aphlict), or after a position (then also whether that is provably all, and where
   * history is now), oldest first, that `wants` accepts by their PHIDs. Only that window is
   * read from history; its cost is counted (entries read, entries kept, read time).
   */
  async replayFor(instance: string, request: ReplayRequest, phids: Iterable<string>): Promise<ReplayResult> {
    this.counters.replays++;
    const started = performance.now();
    const window = await this.reads.read(instance, request.kind === 'age' ? request.ageMs : Number.POSITIVE_INFINITY);
    const ms = performance.now() - started;
    for (const observe of this.counters.replayReadObservers) observe(ms);
    // Looked up by the socket's PHIDs in the window's shared index: the cost follows what
    // it matches, not the window's size.
    const matching = addressedTo(window, phids);
    this.counters.replayEntriesRead += matching.length;
    let entries: Envelope[];
    let afterResult: ReplayResult['after'];
    if (request.kind === 'age') entries = matching.filter((e) => e.ageMs <= request.ageMs);
    else {
      const { head } = window;
      const from = request.since.epoch === head.epoch ? request.since.offset : -1;
      entries = matching.filter((e) => e.position.offset > from);
      const recovered = isRecovered(request.since, head, window.oldestOffset);
      afterResult = { recovered, head };
      if (!recovered) this.counters.replaysNotRecovered++;
    }
    this.counters.replayEntriesSent += entries.length;
    return { entries, after: afterResult };
  }

  /** Where an instance's history is now (a client that turns positions on starts from it). */
  head(instance: string): Promise<Position> {
    return this.history.head(instance);
  }

  private onBusMessage(message: BusMessage): void {
    if (!this.ledger.firstDelivery(message.instance, message.id)) {
      this.counters.duplicatesDropped++;
      return;
    }
    // Marked seen above, so a backfill will not bring it either.
    if (this.isTouched(message)) return;
    this.counters.busIn++;
    this.deliver(message);
  }

  /** This node's own message back from the bus, with the position the store gave it. */
  private onBusEcho(message: BusMessage): void {
    if (this.positionMembers > 0) this.deliver(message, 'positioned');
  }

  /**
   * Aphlict's `touched` holds on every path: a node whose fingerprint a message already
   * carries has handled it and neither delivers nor records it, whether it came to the
   * admin port, from a peer's relay, from the bus or from a backfill.
   */
  private isTouched(envelope: Envelope): boolean {
    if (!envelope.touched?.includes(this.fingerprint)) return false;
    this.counters.touchedDropped++;
    return true;
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
    // Positioned sockets replay from their own position (exact, with `recovered`) rather
    // than take a backfill that lands behind live messages they already have.
    for (const resync of this.resyncHandlers) resync();
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
        const age = this.now() - from;
        for (const entry of within(await this.reads.read(instance, age), age)) {
          if (!this.ledger.firstDelivery(entry.instance, entry.id) || this.isTouched(entry)) continue;
          this.deliver(entry, 'plain');
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
