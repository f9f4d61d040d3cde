/**
 * The raw Aphlict protocol: a WebSocket at `/~instance/`, JSON frames `{command, data}` up,
 * the published messages and `{"type":"pong"}` down. Pings every 15 s like Phorge's
 * JX.Aphlict (load balancers drop idle connections), and a missing pong ends the connection
 * so a half-open socket does not hide lost messages.
 *
 * A server handles a socket's frames in order and answers a ping only after what came
 * before it is done (Aphlict's replay is synchronous; Tidings queues frames behind a replay
 * or a `positions` answer): so a pong marks the end of a subscribe, a replay, or the time
 * by which a `positions` answer must have come (Aphlict ignores the command).
 */
import { TOKEN_EXPIRED_CLOSE_CODE, TidingsConnectionLostError, type AuthFailure, type Position, type TidingsMessage } from './types';
import type { ReplayOutcome, ReplayRequest, Transport, TransportHandlers } from './transport';
import { readPosition } from './position-tracker';

/** What the client needs of a WebSocket: the browser's, Node's global one, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  /** Node's `ws` passes an ErrorEvent whose message names a refused upgrade's status; browsers say nothing. */
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;

export interface AphlictTransportOptions {
  url: string;
  WebSocket: WebSocketConstructor;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  /** Gives up on a connection that does not open in time. */
  connectTimeoutMs: number;
}

/** `ws://host:port/prefix/` with the instance as Aphlict reads it: `/prefix/~instance/`. */
export function aphlictUrl(url: string, instance: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (!u.pathname.includes('~')) {
    u.pathname = `${u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`}~${encodeURIComponent(instance)}/`;
  }
  return u.toString();
}

/**
 * The client's connection token on the WebSocket URL, as `?token=` (browsers cannot set
 * headers on a WebSocket); any `token` already in the URL is replaced.
 */
export function withToken(url: string, token: string | undefined): string {
  if (token === undefined) return url;
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}

/** The HTTP status of a refused upgrade, from the error `ws` reports ("Unexpected server response: 401"). */
function refusedStatus(error: unknown): number | undefined {
  const message = (error as { message?: unknown } | null)?.message;
  const match = typeof message === 'string' ? /Unexpected server response: (\d{3})/.exec(message) : null;
  return match ? Number(match[1]) : undefined;
}

export class AphlictTransport implements Transport {
  private readonly ws: WebSocketLike;
  /** Round trips waiting for their pong, oldest first. */
  private readonly pongWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Replays by position waiting for their `replayed` frame, oldest first. */
  private readonly replayedWaiters: ((outcome: ReplayOutcome) => void)[] = [];
  /** Positions were asked for on this connection: frames carry `tidings`, and a `positions` answer may come. */
  private positionsAsked = false;
  /** The server answered `positions`. */
  private positionsOn = false;
  private pingTimer?: ReturnType<typeof setInterval>;
  private pongDeadline?: ReturnType<typeof setTimeout>;
  private connectTimer?: ReturnType<typeof setTimeout>;
  private ended = false;
  private opened = false;
  /** The status of a refused upgrade, when the WebSocket implementation tells it. */
  private refused?: number;
  private closedSignal?: () => void;
  private readonly closedPromise: Promise<void>;

  constructor(
    private readonly options: AphlictTransportOptions,
    private readonly handlers: TransportHandlers,
  ) {
    this.closedPromise = new Promise((resolve) => (this.closedSignal = resolve));
    this.ws = new options.WebSocket(options.url);
    this.connectTimer = setTimeout(() => this.end('connect timeout'), options.connectTimeoutMs);
    this.ws.onopen = () => {
      this.opened = true;
      clearTimeout(this.connectTimer);
      this.pingTimer = setInterval(() => this.keepalive(), options.pingIntervalMs);
      this.handlers.onOpen();
    };
    this.ws.onmessage = (ev) => this.onFrame(ev.data);
    // The close that follows carries the outcome; the error may say why an upgrade was refused.
    this.ws.onerror = (ev) => {
      if (!this.opened) this.refused ??= refusedStatus(ev);
    };
    this.ws.onclose = (ev) => this.onSocketClose(ev);
  }

  async askPositions(): Promise<boolean> {
    this.positionsAsked = true;
    this.command('positions', true);
    await this.roundTrip();
    return this.positionsOn;
  }

  async subscribe(phids: string[]): Promise<void> {
    this.command('subscribe', phids);
    await this.roundTrip();
  }

  async unsubscribe(phids: string[]): Promise<void> {
    this.command('unsubscribe', phids);
    await this.roundTrip();
  }

  async replay(request: ReplayRequest): Promise<ReplayOutcome> {
    if (request.kind === 'age') {
      this.command('replay', { age: Math.max(1, Math.round(request.ageMs)) });
      await this.roundTrip();
      return {};
    }
    // A server that does not know `since` answers no `replayed` frame: the pong settles it.
    let outcome: ReplayOutcome = {};
    const waiter = (o: ReplayOutcome) => (outcome = o);
    this.command('replay', { since: request.since });
    this.replayedWaiters.push(waiter);
    try {
      await this.roundTrip();
    } finally {
      const i = this.replayedWaiters.indexOf(waiter);
      if (i >= 0) this.replayedWaiters.splice(i, 1);
    }
    return outcome;
  }

  close(): Promise<void> {
    if (!this.ended) {
      this.stopTimers();
      this.ended = true;
      this.ws.onclose = () => this.closedSignal?.();
      this.ws.onmessage = null;
      if (this.ws.readyState === 3) this.closedSignal?.();
      else this.ws.close(1000, 'client closed');
      this.failWaiters('aphlict: connection closed by the client');
      // A socket still connecting may never report its close: do not wait on it forever.
      const fallback = setTimeout(() => this.closedSignal?.(), 2_000);
      void this.closedPromise.then(() => clearTimeout(fallback));
    }
    return this.closedPromise;
  }

  private command(command: string, data: unknown): void {
    if (this.ended || this.ws.readyState !== OPEN) throw new TidingsConnectionLostError(`aphlict: ${command} while the socket is not open`);
    this.ws.send(JSON.stringify({ command, data }));
  }

  /** A ping; resolves on its pong (pongs come back in order), rejects if the connection ends first. */
  private roundTrip(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.ended || this.ws.readyState !== OPEN) return reject(new TidingsConnectionLostError('aphlict: connection closed'));
      this.pongWaiters.push({ resolve, reject });
      this.ping();
    });
  }

  private failWaiters(reason: string): void {
    for (const w of this.pongWaiters.splice(0)) w.reject(new TidingsConnectionLostError(reason));
    this.replayedWaiters.length = 0;
  }

  /** The keepalive's ping: its pong must be matched too, so round trips get their own. */
  private keepalive(): void {
    if (this.ended || this.ws.readyState !== OPEN) return;
    this.pongWaiters.push({ resolve: () => undefined, reject: () => undefined });
    this.ping();
  }

  private ping(): void {
    if (this.ended || this.ws.readyState !== OPEN) return;
    this.ws.send('{"command":"ping"}');
    this.pongDeadline ??= this.pongTimer();
  }

  private pongTimer(): ReturnType<typeof setTimeout> {
    return setTimeout(() => {
      try {
        this.ws.close(4000, 'keepalive timeout');
      } catch {
        // already closing
      }
      this.end('keepalive timeout: no pong');
    }, this.options.pongTimeoutMs);
  }

  private onFrame(data: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      return; // not JSON: nothing a client can use
    }
    if (message === null || typeof message !== 'object' || Array.isArray(message)) return;
    this.handlers.onAlive();
    const type = (message as { type?: unknown }).type;
    if (type === 'pong') {
      clearTimeout(this.pongDeadline);
      this.pongDeadline = undefined;
      // Pongs come back in the order of the pings: each answers the oldest one.
      this.pongWaiters.shift()?.resolve();
      if (this.pongWaiters.length) this.pongDeadline = this.pongTimer();
      return;
    }
    if (this.pongDeadline) {
      // The server is busy sending (a long replay ahead of the pong), not gone.
      clearTimeout(this.pongDeadline);
      this.pongDeadline = this.pongTimer();
    }
    if (this.positionsAsked && this.onPositionsFrame(type, message as Record<string, unknown>)) return;
    this.handlers.onMessage(message as TidingsMessage);
  }

  /**
   * The frames of positions (libs/protocol/src/positions.ts): the `positions` answer, the
   * `replayed` end of a replay by position, and the `tidings` key of a delivered message,
   * taken off before the message reaches the application. True when the frame was handled.
   */
  private onPositionsFrame(type: unknown, frame: Record<string, unknown>): boolean {
    if (type === 'positions') {
      const head = readPosition(frame);
      if (!head) return false;
      this.positionsOn = true;
      this.handlers.onPositions(head);
      return true;
    }
    if (type === 'replayed' && typeof frame.recovered === 'boolean' && this.replayedWaiters.length) {
      const head = readPosition(frame);
      if (!head) return false;
      this.replayedWaiters.shift()!({ recovered: frame.recovered, head });
      return true;
    }
    // Only once the server answered: an Aphlict server never does, and a published field of
    // that name then reaches the application as is. (Tidings sends the answer before any
    // delivery can come: the subscriptions follow the request and wait behind its answer.)
    if (!this.positionsOn || !('tidings' in frame)) return false;
    const position: Position | null = readPosition(frame.tidings);
    if (!position) return false;
    const message = { ...frame };
    delete message.tidings;
    this.handlers.onMessage(message as TidingsMessage, position);
    return true;
  }

  private onSocketClose(ev: { code?: number; reason?: string }): void {
    if (this.refused !== undefined) {
      return this.end(`refused: HTTP ${this.refused}`, this.refused === 401 ? 'unauthorized' : undefined);
    }
    const reason = ev.code ? `closed with ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}` : 'closed';
    this.end(reason, ev.code === TOKEN_EXPIRED_CLOSE_CODE ? 'token_expired' : undefined);
  }

  private stopTimers(): void {
    clearTimeout(this.connectTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.pongDeadline);
  }

  private end(reason: string, auth?: AuthFailure): void {
    if (this.ended) return;
    this.ended = true;
    this.stopTimers();
    this.ws.onmessage = null;
    this.ws.onclose = null;
    if (this.ws.readyState !== 3) {
      try {
        this.ws.close();
      } catch {
        // a socket still connecting may refuse close() in some implementations
      }
    }
    this.closedSignal?.();
    this.failWaiters(`aphlict: connection ended (${reason})`);
    this.handlers.onClose(reason, auth);
  }
}
