/**
 * Tidings' Socket.IO contract: `auth: {instance, token}`, `subscribe` / `unsubscribe` / `replay`
 * with acks, `message` events. Socket.IO's own reconnection is off: the client applies one
 * policy to both transports. engine.io's heartbeat keeps the connection alive, so no pings.
 */
import { io, type Socket } from 'socket.io-client';
import { TidingsAckError, type AuthFailure, type SocketIoAck, type TidingsMessage } from './types';
import type { Transport, TransportHandlers } from './transport';

export interface SocketIoTransportOptions {
  url: string;
  instance: string;
  /** The connection token, sent in the handshake as `auth.token`. */
  token?: string;
  /** Socket.IO's path on the client port. */
  path: string;
  ackTimeoutMs: number;
  connectTimeoutMs: number;
  /** engine.io transports, in order of preference. */
  transports: ('websocket' | 'polling' | 'webtransport')[];
}

export class SocketIoTransport implements Transport {
  private readonly socket: Socket;
  private ended = false;

  constructor(
    private readonly options: SocketIoTransportOptions,
    private readonly handlers: TransportHandlers,
  ) {
    const u = new URL(options.url);
    if (u.protocol === 'ws:') u.protocol = 'http:';
    if (u.protocol === 'wss:') u.protocol = 'https:';
    // The URL's path would name a Socket.IO namespace: only its origin is used.
    this.socket = io(u.origin, {
      path: options.path,
      auth: options.token === undefined ? { instance: options.instance } : { instance: options.instance, token: options.token },
      reconnection: false,
      forceNew: true,
      timeout: options.connectTimeoutMs,
      transports: options.transports,
      tryAllTransports: true,
    });
    this.socket.on('connect', () => {
      this.socket.io.engine?.on('heartbeat', () => this.handlers.onAlive());
      this.handlers.onOpen();
    });
    this.socket.on('message', (message: unknown) => {
      if (message === null || typeof message !== 'object' || Array.isArray(message)) return;
      this.handlers.onAlive();
      this.handlers.onMessage(message as TidingsMessage);
    });
    this.socket.on('disconnect', (reason) => this.end(`disconnected: ${reason}`));
    // The server's middleware refuses a missing or bad token with the error `unauthorized`.
    this.socket.on('connect_error', (err) => this.end(`connect error: ${err.message}`, err.message === 'unauthorized' ? 'unauthorized' : undefined));
  }

  subscribe(phids: string[]): Promise<void> {
    return this.call('subscribe', phids);
  }

  unsubscribe(phids: string[]): Promise<void> {
    return this.call('unsubscribe', phids);
  }

  replay(ageMs: number): Promise<void> {
    return this.call('replay', { age: Math.max(1, Math.round(ageMs)) });
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }

  private async call(event: string, data: unknown): Promise<void> {
    const ack = (await this.socket.timeout(this.options.ackTimeoutMs).emitWithAck(event, data)) as SocketIoAck;
    if (!ack || ack.ok !== true) {
      const failed = (ack ?? { ok: false, error: 'internal', message: 'no ack' }) as Extract<SocketIoAck, { ok: false }>;
      throw new TidingsAckError(failed.error, `${event}: ${failed.message}`, failed);
    }
  }

  private end(reason: string, auth?: AuthFailure): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.handlers.onClose(reason, auth);
  }
}
