/**
 * What every Bus implementation shares, so a backend only moves text (as socket.io's
 * sharded adapter leaves the cluster protocol to its base class): the node id, decoding
 * at the edge, dropping own echoes, canaries for roundTrip(), up/down bookkeeping.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { silentLogger, type Envelope, type Logger } from '@tidings/protocol';
import type { Bus, BusEvents, BusMessage } from './bus';
import { decodeBusFrame, encodeCanary, encodeMessage, messagePrefix, splitForPosition, toBusMessage } from './bus-codec';

export interface BusBaseOptions {
  /** Id stamped on this node's traffic. Default: 16 random hex characters. */
  nodeId?: string;
  /** Default: a logger that drops everything. */
  logger?: Logger;
  /** Clock, for tests. Default Date.now. */
  now?: () => number;
}

/** Error codes of bus failures, stable for logs and tests. */
export class BusError extends Error {
  override name = 'BusError';
  constructor(
    readonly code: 'BUS_DOWN' | 'BUS_TIMEOUT' | 'BUS_CLOSED',
    message: string,
  ) {
    super(message);
  }
}

export abstract class BusBase extends EventEmitter<BusEvents> implements Bus {
  readonly nodeId: string;
  protected readonly logger: Logger;
  protected readonly now: () => number;
  /** Epoch ms since when the bus is down; null while up (or before the first connect). */
  protected downSince: number | null = null;
  private connected = false;
  private everUp = false;
  private reportedDown = false;
  private readonly canaries = new Map<string, (err: Error | null, receivedAt?: number) => void>();
  /**
   * Decode this node's own messages and emit them as `echo` (their position comes back from
   * the store that published them); off, they are dropped by their prefix unparsed.
   */
  echoes = false;
  /** Counts for /status/ and metrics. */
  readonly stats = { published: 0, received: 0, echoesDropped: 0, malformed: 0, reconnects: 0 };
  private readonly echoPrefix: string;

  constructor(options: BusBaseOptions) {
    super();
    this.nodeId = options.nodeId ?? randomBytes(8).toString('hex');
    this.echoPrefix = messagePrefix(this.nodeId);
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  abstract start(): Promise<void>;
  abstract close(): Promise<void>;

  /** See Bus.reconnect: marks the bus down since the silence began, then lets the backend reconnect. */
  reconnect(reason: string, silentSince: number | null): void {
    this.stats.reconnects++;
    this.logger.warn({ nodeId: this.nodeId, reason, silentSince }, 'bus: connected but not delivering; reconnecting');
    this.markDown(new BusError('BUS_DOWN', `bus: reconnecting (${reason})`), silentSince ?? undefined);
    this.dropConnection();
  }

  /** Drops the backend's subscription so that it re-establishes it and calls markUp(). */
  protected abstract dropConnection(): void;
  /** Sends encoded text to every node on the channel, this one included. */
  protected abstract send(text: string, kind: 'message' | 'canary'): Promise<void>;

  async publish(message: Envelope): Promise<void> {
    if (!this.connected) throw new BusError('BUS_DOWN', 'bus: not connected');
    await this.send(encodeMessage(this.nodeId, message), 'message');
    this.stats.published++;
  }

  /** The text publish() sends, for a store that publishes it atomically with its append. */
  encode(message: Envelope): string {
    return encodeMessage(this.nodeId, message);
  }

  /** The same, split where a store splices in the message's position (bus-codec splitForPosition). */
  splitForPosition(message: Envelope): { head: string; tail: string } {
    return splitForPosition(this.nodeId, message);
  }

  roundTrip(timeoutMs: number): Promise<number> {
    // A down bus cannot prove delivery: say so at once instead of waiting for the timeout.
    if (!this.connected) return Promise.reject(new BusError('BUS_DOWN', 'bus: not connected'));
    const nonce = randomBytes(8).toString('hex');
    const started = this.now();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.canaries.delete(nonce);
        reject(new BusError('BUS_TIMEOUT', `bus: canary did not come back within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (err: Error | null, receivedAt = 0) => {
        clearTimeout(timer);
        this.canaries.delete(nonce);
        if (err) reject(err);
        else resolve(receivedAt - started);
      };
      this.canaries.set(nonce, settle);
      this.send(encodeCanary(this.nodeId, nonce), 'canary').catch((err: Error) => settle(err));
    });
  }

  /** Rejects every canary in flight (the bus went down or is closing). */
  protected failCanaries(error: Error): void {
    for (const settle of [...this.canaries.values()]) settle(error);
  }

  /** Called by the backend with every text received on the channel. Never throws. */
  protected onText(text: string): void {
    if (!this.echoes && text.startsWith(this.echoPrefix)) {
      this.stats.echoesDropped++;
      return;
    }
    const decoded = decodeBusFrame(text);
    if (!decoded.ok) {
      this.stats.malformed++;
      this.logger.warn({ reason: decoded.reason, bytes: text.length }, 'bus: malformed message dropped');
      return;
    }
    const { frame } = decoded;
    if (frame.o === this.nodeId) {
      if (frame.t === 'canary') this.canaries.get(frame.n)?.(null, this.now());
      else if (this.echoes) this.emitSafely('echo', toBusMessage(frame));
      else this.stats.echoesDropped++;
      return;
    }
    if (frame.t === 'canary') return; // another node's probe
    this.stats.received++;
    this.emitSafely('message', toBusMessage(frame));
  }

  private emitSafely(event: 'message' | 'echo', message: BusMessage): void {
    try {
      this.emit(event, message);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, `bus: ${event} listener threw`);
    }
  }

  /** The backend is connected and subscribed. */
  protected markUp(): void {
    if (this.connected) return;
    this.connected = true;
    const reconnect = this.everUp || this.downSince !== null;
    const downSince = this.downSince;
    this.everUp = true;
    this.downSince = null;
    this.reportedDown = false;
    this.logger.info({ nodeId: this.nodeId, reconnect, downSince }, reconnect ? 'bus: connected again' : 'bus: connected');
    this.emit('up', { reconnect, downSince });
  }

  /**
   * The backend lost its connection (or never had one). Reported once per outage. `since`:
   * when delivery actually stopped, if earlier than now (a silent failure found later).
   */
  protected markDown(error: Error, since?: number): void {
    this.connected = false;
    const at = since === undefined ? this.now() : Math.min(since, this.now());
    if (this.downSince === null || at < this.downSince) this.downSince = at;
    this.failCanaries(error);
    if (this.reportedDown) return;
    this.reportedDown = true;
    this.logger.warn({ nodeId: this.nodeId, err: error.message }, 'bus: down, retrying');
    this.emit('down', error);
  }

  /** Status for /status/. */
  describe(): { connected: boolean; nodeId: string; downSince: number | null } & BusBase['stats'] {
    return { connected: this.connected, nodeId: this.nodeId, downSince: this.downSince, ...this.stats };
  }
}
