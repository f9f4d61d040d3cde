/**
 * The raw Aphlict protocol: a WebSocket at `/~instance/`, JSON frames `{command, data}` up,
 * the published messages and `{"type":"pong"}` down. Pings every 15 s like Phorge's
 * JX.Aphlict (load balancers drop idle connections), and a missing pong ends the connection
 * so a half-open socket does not hide lost messages.
 */
import { TOKEN_EXPIRED_CLOSE_CODE, type AuthFailure, type TidingsMessage } from './types';
import type { Transport, TransportHandlers } from './transport';

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
  private readonly pongWaiters: (() => void)[] = [];
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
      this.pingTimer = setInterval(() => this.ping(), options.pingIntervalMs);
      this.handlers.onOpen();
    };
    this.ws.onmessage = (ev) => this.onFrame(ev.data);
    // The close that follows carries the outcome; the error may say why an upgrade was refused.
    this.ws.onerror = (ev) => {
      if (!this.opened) this.refused ??= refusedStatus(ev);
    };
    this.ws.onclose = (ev) => this.onSocketClose(ev);
  }

  async subscribe(phids: string[]): Promise<void> {
    this.command('subscribe', phids);
    await this.roundTrip();
  }

  async unsubscribe(phids: string[]): Promise<void> {
    this.command('unsubscribe', phids);
    await this.roundTrip();
  }

  async replay(ageMs: number): Promise<void> {
    // The server answers a replay asynchronously: a pong does not mean the replay is done.
    this.command('replay', { age: Math.max(1, Math.round(ageMs)) });
  }

  close(): Promise<void> {
    if (!this.ended) {
      this.stopTimers();
      this.ended = true;
      this.ws.onclose = () => this.closedSignal?.();
      this.ws.onmessage = null;
      if (this.ws.readyState === 3) this.closedSignal?.();
      else this.ws.close(1000, 'client closed');
      for (const w of this.pongWaiters.splice(0)) w();
      // A socket still connecting may never report its close: do not wait on it forever.
      const fallback = setTimeout(() => this.closedSignal?.(), 2_000);
      void this.closedPromise.then(() => clearTimeout(fallback));
    }
    return this.closedPromise;
  }

  private command(command: string, data: unknown): void {
    if (this.ws.readyState !== OPEN) throw new Error(`aphlict: ${command} while the socket is not open`);
    this.ws.send(JSON.stringify({ command, data }));
  }

  /** A ping; resolves on its pong (pongs come back in order). */
  private roundTrip(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.ended) return reject(new Error('aphlict: connection closed'));
      this.pongWaiters.push(resolve);
      this.ping();
    });
  }

  private ping(): void {
    if (this.ended || this.ws.readyState !== OPEN) return;
    this.ws.send('{"command":"ping"}');
    this.pongDeadline ??= setTimeout(() => {
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
    if ((message as { type?: unknown }).type === 'pong') {
      clearTimeout(this.pongDeadline);
      this.pongDeadline = undefined;
      this.pongWaiters.shift()?.();
      return;
    }
    this.handlers.onMessage(message as TidingsMessage);
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
    for (const w of this.pongWaiters.splice(0)) w();
    this.handlers.onClose(reason, auth);
  }
}
