/**
 * A Tidings (or Aphlict) client for both transports, in Node and in browsers: subscriptions
 * that survive reconnects, Aphlict's reconnect policy, a replay on every reconnect of what the
 * client may have missed (by position when the server offers positions, which also tells
 * whether anything is lost; else by age), and de-duplication by `uniqueID` and by position
 * (replay and live delivery overlap).
 */
import { TypedEmitter } from './emitter';
import { ReconnectPolicy, type ReconnectOptions } from './reconnect-policy';
import { RecentIds } from './recent-ids';
import { PositionTracker } from './position-tracker';
import type { ReplayOutcome, ReplayRequest, Transport, TransportHandlers } from './transport';
import { AphlictTransport, aphlictUrl, withToken, type WebSocketConstructor } from './aphlict-transport';
import { SocketIoTransport } from './socketio-transport';
import {
  DEFAULT_INSTANCE,
  TidingsAuthError,
  TidingsConnectionLostError,
  type AuthFailure,
  type ClientEvents,
  type ClientStatus,
  type Position,
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
  /**
   * Ask the server for positions (raw: the `positions` command at every connection;
   * Socket.IO: `auth.positions`). A server that offers them numbers its messages, so a
   * reconnect replays exactly what came after the last one the client has and learns
   * whether that is everything (`recovered` in the `open` status); a server that does not
   * (Aphlict) ignores the request and the client replays by age. Default true.
   */
  positions?: boolean;
  /** Ask for a replay after every reconnect. Default true. */
  replayOnReconnect?: boolean;
  /** Longest replay asked for, ms (the server keeps 60 s). Default 60000. */
  maxReplayAgeMs?: number;
  /** Added to the time since the last sign of life when asking for a replay, ms. Default 5000. */
  replayMarginMs?: number;
  /** How many recent `uniqueID`s (and, apart, positions) are remembered to drop duplicates. Default 4096. */
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
  /** Messages dropped as already seen (same uniqueID, or same position). */
  duplicates: number;
  /** Connections that opened after the first. */
  reconnects: number;
  /** Replays asked for. */
  replays: number;
}

/**
 * One connection that opened, until it ends: the client's commands go through it once its
 * handshake has sent the subscriptions (`live`), and every wait on it ends when it does.
 */
interface Session {
  readonly transport: Transport;
  /** The handshake has sent the subscriptions: later changes go to the server directly. */
  live: boolean;
  /** The PHIDs the handshake sent, and how that went when it failed (a Socket.IO refusal). */
  resubscribed: ReadonlySet<string>;
  resubscribeError?: Error;
  /** Subscriptions sent on this connection whose round trip (or ack) has not come back. */
  readonly inFlight: Map<string, Promise<void>>;
  /** Rejects with TidingsConnectionLostError when the connection ends. */
  readonly lost: Promise<never>;
  lose(err: TidingsConnectionLostError): void;
}

function createSession(transport: Transport): Session {
  let lose!: (err: TidingsConnectionLostError) => void;
  const lost = new Promise<never>((_, reject) => (lose = reject));
  lost.catch(() => undefined);
  return { transport, live: false, resubscribed: new Set(), inFlight: new Map(), lost, lose };
}

/** `work`, or TidingsConnectionLostError as soon as the session ends. */
function within<T>(session: Session, work: Promise<T>): Promise<T> {
  return Promise.race([work, session.lost]);
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
  private readonly tracker: PositionTracker;
  private readonly phids = new Set<string>();
  private readonly now: () => number;
  private state: State = 'idle';
  /** The connection being made; `session` once it opened. */
  private transport?: Transport;
  private session?: Session;
  /** subscribe() calls waiting for the next open (they are in its resubscribe). */
  private readonly openWaiters = new Set<{ resolve: (session: Session) => void; reject: (err: Error) => void }>();
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
    this.tracker = new PositionTracker(options.dedupeSize ?? 4096);
    this.now = options.now ?? Date.now;
  }

  /** The URL of the current (or last) connection. */
  get url(): string {
    return this.urls[(this.urlIndex + this.urls.length - 1) % this.urls.length];
  }

  /**
   * The current state: idle, connecting (also while a connection that opened negotiates
   * positions, resubscribes and replays), open, waiting (to reconnect) or closed.
   */
  get status(): State {
    return this.state;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /**
   * Where the client is in its instance's history: the position a reconnect replays from
   * (null before the server gave one, or when the server does not offer positions).
   */
  get position(): Position | null {
    return this.tracker.position;
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

  /**
   * Resolves when the client is open (now or at the next `open` status: subscriptions held,
   * a reconnect's replay delivered); rejects after `timeoutMs` or on close.
   */
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
   * Adds PHIDs, kept across reconnects. Resolves once the server holds them, so a message
   * published after that reaches this client: raw transport, after the subscribe frame and a
   * ping round trip; Socket.IO, on the ack (rejects with TidingsAckError when the server
   * refuses some). While the client is not connected, it waits for the next connection and
   * its resubscribe (however long reconnecting takes); rejects if the client closes first.
   */
  async subscribe(phids: string[]): Promise<void> {
    let added = phids.filter((p) => !this.phids.has(p));
    for (const p of added) this.phids.add(p);
    const wanted = [...new Set(phids)];
    if (!wanted.length) return;
    for (;;) {
      if (this.state === 'closed') throw new Error('tidings client: closed before the subscription was in place');
      const session = this.session;
      if (session?.live) {
        try {
          if (added.length) this.send(session, added);
          // Also those sent just before by another call or the handshake, still on their way.
          await within(session, Promise.all(wanted.map((p) => session.inFlight.get(p))));
          return;
        } catch (err) {
          if (!(err instanceof TidingsConnectionLostError)) throw err;
          // Kept in `phids`: the next connection's handshake sends them.
          added = [];
        }
      }
      const opened = await this.nextOpen();
      if (opened.resubscribeError && wanted.some((p) => opened.resubscribed.has(p))) throw opened.resubscribeError;
      if (wanted.every((p) => !this.phids.has(p) || opened.resubscribed.has(p))) return;
      // Unsubscribed and subscribed again meanwhile: send them on this connection.
      added = wanted.filter((p) => this.phids.has(p) && !opened.resubscribed.has(p));
    }
  }

  /** Removes PHIDs. While connected, resolves once the server has dropped them. */
  async unsubscribe(phids: string[]): Promise<void> {
    const removed = phids.filter((p) => this.phids.delete(p));
    const session = this.session;
    if (!removed.length || !session?.live) return;
    try {
      await within(session, session.transport.unsubscribe(removed));
    } catch (err) {
      // A connection that ended holds nothing; the next one is sent `phids` only.
      if (!(err instanceof TidingsConnectionLostError)) throw err;
    }
  }

  /**
   * Asks for the kept messages newer than `ageMs` now (the client replays by itself on
   * reconnect). Resolves once they have been delivered.
   */
  async replay(ageMs: number): Promise<void> {
    const session = this.session;
    if (this.state !== 'open' || !session) throw new Error('tidings client: replay while not open');
    this.stats.replays++;
    this.tracker.beginReplay();
    try {
      await within(session, session.transport.replay({ kind: 'age', ageMs }));
    } finally {
      this.tracker.endReplay();
    }
  }

  /** Ends the connection, the reconnect timer and the keepalive. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.generation++;
      clearTimeout(this.retryTimer);
      const transport = this.transport;
      this.transport = undefined;
      this.endSession(new TidingsConnectionLostError('tidings client: closed'));
      const wasClosed = this.state === 'closed';
      this.state = 'closed';
      this.rejectOpenWaiters('closed by client');
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
      onMessage: (message, position) => {
        if (generation === this.generation) this.onMessage(message, position);
      },
      onPositions: (head) => {
        if (generation === this.generation) this.tracker.start(head);
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
          positions: o.positions !== false,
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
    this.attempt = 0;
    this.policy?.opened();
    this.lastAliveAt = this.now();
    const session = createSession(transport);
    this.session = session;
    this.handshake(session, reconnected, missedSince).catch((err: Error) => {
      // A connection that ended meanwhile is reported by onLost; anything else is a defect here.
      if (!(err instanceof TidingsConnectionLostError)) this.reportError(err);
    });
  }

  /**
   * Before the connection counts as open: positions (raw: asked, and an answer before the
   * pong means the server offers them), the subscriptions, and after a reconnect the replay
   * of what was missed, by position when the client holds one, else by age.
   */
  private async handshake(session: Session, reconnected: boolean, missedSince: number | null): Promise<void> {
    const { transport } = session;
    // Taken before this connection's `positions` answer can set a first one.
    const held = this.tracker.position;
    const asked = this.options.positions !== false && transport.askPositions ? transport.askPositions() : undefined;
    const phids = [...this.phids];
    const subscribed = phids.length ? this.send(session, phids) : Promise.resolve();
    session.resubscribed = new Set(phids);
    session.live = true;
    // undefined: not asked, or asked in a handshake that has no answer to wait for (Socket.IO).
    const offered = asked && (await within(session, asked));
    if (offered === false) this.tracker.forget();
    try {
      await within(session, subscribed);
    } catch (err) {
      if (err instanceof TidingsConnectionLostError) throw err;
      session.resubscribeError = err as Error;
      this.reportError(err as Error);
    }
    let recovered: boolean | undefined;
    const since = held && this.tracker.position && held;
    if (this.options.replayOnReconnect !== false) {
      if (since) recovered = await this.replayMissed(session, { kind: 'since', since });
      else if (reconnected && missedSince !== null && phids.length) {
        // Everything since the last sign of life of the old connection, plus a margin.
        const ageMs = Math.min(this.options.maxReplayAgeMs ?? 60_000, this.now() - missedSince + (this.options.replayMarginMs ?? 5_000));
        await this.replayMissed(session, { kind: 'age', ageMs });
      }
    }
    if (this.session !== session) return;
    this.state = 'open';
    if (reconnected) this.stats.reconnects++;
    for (const waiter of [...this.openWaiters]) waiter.resolve(session);
    this.openWaiters.clear();
    this.emit('status', recovered === undefined ? { state: 'open', reconnected } : { state: 'open', reconnected, recovered });
  }

  /** The replay of a reconnect; resolves with `recovered` (undefined for a replay by age). */
  private async replayMissed(session: Session, request: ReplayRequest): Promise<boolean | undefined> {
    this.stats.replays++;
    this.tracker.beginReplay();
    let outcome: ReplayOutcome;
    try {
      outcome = await within(session, session.transport.replay(request));
    } catch (err) {
      this.tracker.endReplay();
      if (err instanceof TidingsConnectionLostError) throw err;
      this.reportError(err as Error);
      // A replay by position that failed cannot say nothing was lost.
      return request.kind === 'since' ? false : undefined;
    }
    this.tracker.endReplay(outcome.head);
    // Asked by position, answered as by age: this server does not offer positions (an older Tidings).
    if (request.kind === 'since' && outcome.recovered === undefined) this.tracker.forget();
    return outcome.recovered;
  }

  /** Sends a subscribe on the session; each PHID's round trip is in `inFlight` until it is back. */
  private send(session: Session, phids: string[]): Promise<void> {
    const sent = session.transport.subscribe(phids).finally(() => {
      for (const p of phids) if (session.inFlight.get(p) === sent) session.inFlight.delete(p);
    });
    sent.catch(() => undefined);
    for (const p of phids) session.inFlight.set(p, sent);
    return sent;
  }

  /** Resolves at the next `open` (its handshake sent every PHID held then); rejects when the client closes. */
  private nextOpen(): Promise<Session> {
    return new Promise<Session>((resolve, reject) => this.openWaiters.add({ resolve, reject }));
  }

  private rejectOpenWaiters(reason: string): void {
    for (const waiter of [...this.openWaiters]) waiter.reject(new Error(`tidings client: closed before the subscription was in place (${reason})`));
    this.openWaiters.clear();
  }

  private endSession(err: TidingsConnectionLostError): void {
    this.session?.lose(err);
    this.session = undefined;
  }

  private onMessage(message: TidingsMessage, position?: Position): void {
    // Both are recorded, whichever says it is a duplicate.
    const newPosition = position ? this.tracker.receive(position) : true;
    const id = message.uniqueID;
    const newId = typeof id === 'string' && id !== '' ? this.recent.add(id) : true;
    if (!newPosition || !newId) {
      this.stats.duplicates++;
      return;
    }
    this.stats.received++;
    if (position) this.emit('message', message, position);
    else this.emit('message', message);
  }

  private onLost(reason: string, hadOpened: boolean, auth?: AuthFailure): void {
    if (this.state === 'closed') return;
    this.transport = undefined;
    this.endSession(new TidingsConnectionLostError(`connection lost: ${reason}`));
    // An expired token is the normal end of a connection with short-lived tokens, not an error.
    if (auth === 'unauthorized' || auth === 'token_unavailable') {
      this.reportError(new TidingsAuthError(auth, auth === 'unauthorized' ? `the server refused the token (${reason})` : reason));
    }
    const delayMs = this.policy?.next(hadOpened) ?? null;
    const why = auth ? { auth } : {};
    if (delayMs === null) {
      this.state = 'closed';
      this.rejectOpenWaiters(reason);
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
