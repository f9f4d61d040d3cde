/**
 * A Tidings (or Aphlict) client for both transports, in Node and in browsers: subscriptions
 * that survive reconnects, Aphlict's reconnect policy, a replay on every reconnect of what the
 * client may have missed, and de-duplication by `uniqueID` (replay and live delivery overlap).
 */
import { TypedEmitter } from './emitter';
import { ReconnectPolicy, type ReconnectOptions } from './reconnect-policy';
import { RecentIds } from './recent-ids';
import type { Transport, TransportHandlers } from './transport';
import { AphlictTransport, aphlictUrl, withToken, type WebSocketConstructor } from './aphlict-transport';
import { SocketIoTransport } from './socketio-transport';
import {
  DEFAULT_INSTANCE,
  TidingsAuthError,
  type AuthFailure,
  type ClientEvents,
  type ClientStatus,
  type TidingsMessage,
  type TransportName,
} from './types';

/** Gives the connection token for the next attempt; may fetch it (short-lived tokens). */
export type TokenProvider = () => string | Promise<string>;

export interface ClientOptions {
  /** The tenant. Default `default`. */
  instance?: string;
  /** `aphlict` (raw WebSocket, Phorge's protocol) or `socket.io`. Default `aphlict`. */
  transport?: TransportName;
  /**
   * A connection token (`auth.clientTokens`), sent with every connection: raw transport as
   * `?token=` on the WebSocket URL (browsers cannot set headers), Socket.IO as
   * `auth: {token}`. Fine for a token that outlives the page; use getToken for short-lived
   * ones. Default none.
   */
  token?: string;
  /**
   * Called before every connection attempt, the first and each reconnect (also after the
   * server refused a token or closed the connection because its token expired); the token
   * it gives is used for that attempt. A throw, a rejection, an empty answer or no answer
   * within `connectTimeoutMs` fails the attempt (status `reconnecting` with `auth:
   * 'token_unavailable'`, and an `error`); the reconnect policy decides when to ask again.
   * Not together with `token`. Default none.
   */
  getToken?: TokenProvider;
  /** Socket.IO's path on the client port. Default `/socket.io/`. */
  socketioPath?: string;
  /** engine.io transports for Socket.IO, in order of preference. Default websocket, then polling. */
  socketioTransports?: ('websocket' | 'polling')[];
  /** Reconnect policy; `false` never reconnects. Default: Aphlict's (see ReconnectOptions). */
  reconnect?: ReconnectOptions | false;
  /** Raw transport: keepalive ping interval, ms. Default 15000 (JX.Aphlict). */
  pingIntervalMs?: number;
  /** Raw transport: a ping unanswered this long ends the connection, ms. Default 10000. */
  pongTimeoutMs?: number;
  /** A connection that has not opened after this long is given up (getToken() too), ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Socket.IO: how long to wait for an ack, ms. Default 10000. */
  ackTimeoutMs?: number;
  /** Ask for a replay after every reconnect. Default true. */
  replayOnReconnect?: boolean;
  /** Longest replay asked for, ms (the server keeps 60 s). Default 60000. */
  maxReplayAgeMs?: number;
  /** Added to the time since the last sign of life when asking for a replay, ms. Default 5000. */
  replayMarginMs?: number;
  /** How many recent `uniqueID`s are remembered to drop duplicates. Default 4096. */
  dedupeSize?: number;
  /** The WebSocket class for the raw transport. Default: the global WebSocket, else the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Clock, for tests. Default Date.now. */
  now?: () => number;
}

type State = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export interface ClientStats {
  /** Messages handed to `message` listeners. */
  received: number;
  /** Messages dropped as already seen (same uniqueID). */
  duplicates: number;
  /** Connections that opened after the first. */
  reconnects: number;
  /** Replays asked for. */
  replays: number;
}

async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  const ws = await import('ws');
  return ((ws as { default?: unknown }).default ?? ws) as unknown as WebSocketConstructor;
}

export class TidingsClient extends TypedEmitter<ClientEvents> {
  /** The client URLs, tried in turn: each new attempt goes to the next one (client-side failover). */
  readonly urls: readonly string[];
  readonly instance: string;
  readonly transportName: TransportName;
  readonly stats: ClientStats = { received: 0, duplicates: 0, reconnects: 0, replays: 0 };
  private readonly options: ClientOptions;
  private readonly policy?: ReconnectPolicy;
  private readonly recent: RecentIds;
  private readonly phids = new Set<string>();
  private readonly now: () => number;
  private state: State = 'idle';
  private transport?: Transport;
  private generation = 0;
  private attempt = 0;
  private urlIndex = 0;
  private everOpened = false;
  private lastAliveAt: number | null = null;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closing?: Promise<void>;

  constructor(url: string | readonly string[], options: ClientOptions = {}) {
    super();
    this.urls = typeof url === 'string' ? [url] : [...url];
    if (!this.urls.length) throw new Error('tidings client: no URL given');
    for (const u of this.urls) {
      const protocol = new URL(u).protocol; // throws on what is not a URL
      if (!/^(wss?|https?):$/.test(protocol)) throw new Error(`tidings client: ${u}: use ws, wss, http or https`);
    }
    this.options = options;
    this.instance = options.instance || DEFAULT_INSTANCE;
    this.transportName = options.transport ?? 'aphlict';
    if (this.transportName !== 'aphlict' && this.transportName !== 'socket.io') {
      throw new Error(`tidings client: unknown transport "${String(this.transportName)}" (aphlict or socket.io)`);
    }
    if (options.token !== undefined && options.getToken !== undefined) {
      throw new Error('tidings client: give token or getToken, not both');
    }
    if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '')) {
      throw new Error('tidings client: token must be a non-empty string');
    }
    if (options.getToken !== undefined && typeof options.getToken !== 'function') {
      throw new Error('tidings client: getToken must be a function');
    }
    this.policy = options.reconnect === false ? undefined : new ReconnectPolicy(options.reconnect ?? {});
    this.recent = new RecentIds(options.dedupeSize ?? 4096);
    this.now = options.now ?? Date.now;
  }

  /** The URL of the current (or last) connection. */
  get url(): string {
    return this.urls[(this.urlIndex + this.urls.length - 1) % this.urls.length];
  }

  /** The current state: idle, connecting, open, waiting (to reconnect) or closed. */
  get status(): State {
    return this.state;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** The PHIDs this client is subscribed to (kept across reconnects). */
  get subscriptions(): string[] {
    return [...this.phids];
  }

  /** Starts connecting (connect() calls it). */
  open(): this {
    if (this.state !== 'idle') return this;
    this.state = 'connecting';
    // Deferred, so listeners added right after connect() see the first `connecting`.
    queueMicrotask(() => {
      if (this.state === 'connecting') void this.attemptConnection();
    });
    return this;
  }

  /** Resolves when the client is open (now or at the next open); rejects after `timeoutMs` or on close. */
  waitForOpen(timeoutMs = 10_000): Promise<void> {
    if (this.state === 'open') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onStatus = (s: ClientStatus) => {
        if (s.state === 'open') done();
        else if (s.state === 'closed') done(new Error(`tidings client closed: ${s.reason}`));
      };
      const timer = setTimeout(() => done(new Error(`tidings client: not open after ${timeoutMs} ms`)), timeoutMs);
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.off('status', onStatus);
        if (err) reject(err);
        else resolve();
      };
      this.on('status', onStatus);
    });
  }

  /**
   * Adds PHIDs. While open, resolves once the server holds them (rejects with TidingsAckError
   * when Socket.IO refuses them); otherwise they are sent when the connection opens.
   */
  async subscribe(phids: string[]): Promise<void> {
    const added = phids.filter((p) => !this.phids.has(p));
    for (const p of added) this.phids.add(p);
    if (added.length && this.state === 'open' && this.transport) await this.transport.subscribe(added);
  }

  async unsubscribe(phids: string[]): Promise<void> {
    const removed = phids.filter((p) => this.phids.delete(p));
    if (removed.length && this.state === 'open' && this.transport) await this.transport.unsubscribe(removed);
  }

  /** Asks for the kept messages newer than `ageMs` now (the client does it by itself on reconnect). */
  async replay(ageMs: number): Promise<void> {
    if (this.state !== 'open' || !this.transport) throw new Error('tidings client: replay while not open');
    this.stats.replays++;
    await this.transport.replay(ageMs);
  }

  /** Ends the connection, the reconnect timer and the keepalive. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.generation++;
      clearTimeout(this.retryTimer);
      const transport = this.transport;
      this.transport = undefined;
      const wasClosed = this.state === 'closed';
      this.state = 'closed';
      if (!wasClosed) this.emit('status', { state: 'closed', reason: 'closed by client' });
      await transport?.close();
    })();
    return this.closing;
  }

  private async attemptConnection(): Promise<void> {
    const generation = ++this.generation;
    this.state = 'connecting';
    this.emit('status', { state: 'connecting', attempt: this.attempt });
    let hadOpened = false;
    const handlers: TransportHandlers = {
      onOpen: () => {
        if (generation !== this.generation) return;
        hadOpened = true;
        this.onOpen();
      },
      onMessage: (message) => {
        if (generation === this.generation) this.onMessage(message);
      },
      onAlive: () => {
        if (generation === this.generation) this.lastAliveAt = this.now();
      },
      onClose: (reason, auth) => {
        if (generation === this.generation) this.onLost(reason, hadOpened, auth);
      },
    };
    let token: string | undefined;
    try {
      token = await this.tokenForAttempt();
    } catch (err) {
      if (generation === this.generation) this.onLost(`getToken failed: ${(err as Error).message}`, false, 'token_unavailable');
      return;
    }
    // close() may have come while getToken() was running.
    if (generation !== this.generation) return;
    try {
      const transport = await this.createTransport(handlers, token);
      // close() may have come while the WebSocket class was loading.
      if (generation !== this.generation) void transport.close();
      else this.transport = transport;
    } catch (err) {
      if (generation === this.generation) this.onLost(`cannot connect: ${(err as Error).message}`, false);
    }
  }

  /** The fixed token, or a fresh one from getToken(), bounded by connectTimeoutMs. */
  private async tokenForAttempt(): Promise<string | undefined> {
    const getToken = this.options.getToken;
    if (!getToken) return this.options.token;
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const token = await Promise.race([
        Promise.resolve().then(getToken),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no token within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      if (typeof token !== 'string' || token === '') throw new Error('it gave no token (expected a non-empty string)');
      return token;
    } finally {
      clearTimeout(timer);
    }
  }

  private async createTransport(handlers: TransportHandlers, token: string | undefined): Promise<Transport> {
    const o = this.options;
    const url = this.urls[this.urlIndex++ % this.urls.length];
    const connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    if (this.transportName === 'socket.io') {
      return new SocketIoTransport(
        {
          url,
          instance: this.instance,
          token,
          path: o.socketioPath ?? '/socket.io/',
          ackTimeoutMs: o.ackTimeoutMs ?? 10_000,
          connectTimeoutMs,
          transports: o.socketioTransports ?? ['websocket', 'polling'],
        },
        handlers,
      );
    }
    const WebSocket = o.WebSocket ?? (await defaultWebSocket());
    return new AphlictTransport(
      {
        url: withToken(aphlictUrl(url, this.instance), token),
        WebSocket,
        pingIntervalMs: o.pingIntervalMs ?? 15_000,
        pongTimeoutMs: o.pongTimeoutMs ?? 10_000,
        connectTimeoutMs,
      },
      handlers,
    );
  }

  private onOpen(): void {
    const transport = this.transport;
    if (!transport) return;
    const reconnected = this.everOpened;
    const missedSince = this.lastAliveAt;
    this.everOpened = true;
    this.state = 'open';
    this.attempt = 0;
    this.policy?.opened();
    this.lastAliveAt = this.now();
    if (reconnected) this.stats.reconnects++;
    const phids = [...this.phids];
    const subscribed = phids.length ? transport.subscribe(phids) : Promise.resolve();
    subscribed
      .then(async () => {
        if (!reconnected || this.options.replayOnReconnect === false || missedSince === null || !phids.length) return;
        // Everything since the last sign of life of the old connection, plus a margin.
        const age = Math.min(this.options.maxReplayAgeMs ?? 60_000, this.now() - missedSince + (this.options.replayMarginMs ?? 5_000));
        this.stats.replays++;
        await transport.replay(age);
      })
      .catch((err: Error) => this.reportError(err));
    this.emit('status', { state: 'open', reconnected });
  }

  private onMessage(message: TidingsMessage): void {
    const id = message.uniqueID;
    if (typeof id === 'string' && id !== '' && !this.recent.add(id)) {
      this.stats.duplicates++;
      return;
    }
    this.stats.received++;
    this.emit('message', message);
  }

  private onLost(reason: string, hadOpened: boolean, auth?: AuthFailure): void {
    if (this.state === 'closed') return;
    this.transport = undefined;
    // An expired token is the normal end of a connection with short-lived tokens, not an error.
    if (auth === 'unauthorized' || auth === 'token_unavailable') {
      this.reportError(new TidingsAuthError(auth, auth === 'unauthorized' ? `the server refused the token (${reason})` : reason));
    }
    const delayMs = this.policy?.next(hadOpened) ?? null;
    const why = auth ? { auth } : {};
    if (delayMs === null) {
      this.state = 'closed';
      this.emit('status', { state: 'closed', reason, ...why });
      return;
    }
    this.state = 'waiting';
    this.attempt++;
    this.emit('status', { state: 'reconnecting', attempt: this.attempt, delayMs, reason, ...why });
    this.retryTimer = setTimeout(() => void this.attemptConnection(), delayMs);
  }

  private reportError(err: Error): void {
    if (this.listenerCount('error')) this.emit('error', err);
  }
}

/**
 * Creates a client and starts connecting. `url` is a client port (`ws://host:22280`, a path
 * prefix allowed for the raw transport), or several, tried in turn on reconnects.
 */
export function connect(url: string | readonly string[], options: ClientOptions = {}): TidingsClient {
  return new TidingsClient(url, options).open();
}
