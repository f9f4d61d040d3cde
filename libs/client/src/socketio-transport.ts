/**
 * Tidings' Socket.IO contract: `auth: {instance, token, positions}`, `subscribe` /
 * `unsubscribe` / `replay` with acks, `message` events (with the position as a second
 * argument when positions are on), a `positions` event once connected. Socket.IO's own
 * reconnection is off: the client applies one policy to both transports. engine.io's
 * heartbeat keeps the connection alive, so no pings.
 */
import { io, type Socket } from 'socket.io-client';
import { TidingsAckError, TidingsConnectionLostError, type AuthFailure, type SocketIoAck, type TidingsMessage } from './types';
import type { ReplayOutcome, ReplayRequest, Transport, TransportHandlers } from './transport';
import { readPosition } from './position-tracker';

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
  /** Ask for positions in the handshake (`auth.positions`); a server that does not know them ignores it. */
  positions: boolean;
}

export class SocketIoTransport implements Transport {
  private readonly socket: Socket;
  private ended = false;
  /** Settled when the connection ends: pending acks stop waiting for it. */
  private readonly lost: Promise<never>;
  private loseWith?: (err: Error) => void;

  constructor(
    private readonly options: SocketIoTransportOptions,
    private readonly handlers: TransportHandlers,
  ) {
    const u = new URL(options.url);
    if (u.protocol === 'ws:') u.protocol = 'http:';
    if (u.protocol === 'wss:') u.protocol = 'https:';
    this.lost = new Promise<never>((_, reject) => (this.loseWith = reject));
    this.lost.catch(() => undefined);
    const auth: Record<string, unknown> = { instance: options.instance };
    if (options.token !== undefined) auth.token = options.token;
    if (options.positions) auth.positions = true;
    // The URL's path would name a Socket.IO namespace: only its origin is used.
    this.socket = io(u.origin, {
      path: options.path,
      auth,
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
    this.socket.on('message', (message: unknown, position?: unknown) => {
      if (message === null || typeof message !== 'object' || Array.isArray(message)) return;
      this.handlers.onAlive();
      this.handlers.onMessage(message as TidingsMessage, (options.positions && readPosition(position)) || undefined);
    });
    this.socket.on('positions', (head: unknown) => {
      const position = options.positions ? readPosition(head) : null;
      if (position) this.handlers.onPositions(position);
    });
    this.socket.on('disconnect', (reason) => this.end(`disconnected: ${reason}`));
    // The server's middleware refuses a missing or bad token with the error `unauthorized`.
    this.socket.on('connect_error', (err) => this.end(`connect error: ${err.message}`, err.message === 'unauthorized' ? 'unauthorized' : undefined));
  }

  async subscribe(phids: string[]): Promise<void> {
    await this.call('subscribe', phids);
  }

  async unsubscribe(phids: string[]): Promise<void> {
    await this.call('unsubscribe', phids);
  }

  /**
   * The ack ends the replay (its messages came before it). A server that does not know
   * positions reads `{since}` as a replay of the default age and acks without `recovered`.
   */
  async replay(request: ReplayRequest): Promise<ReplayOutcome> {
    const data = request.kind === 'age' ? { age: Math.max(1, Math.round(request.ageMs)) } : { since: request.since };
    const ack = (await this.call('replay', data)) as SocketIoAck & { ok: true };
    const head = readPosition(ack);
    return request.kind === 'since' && typeof ack.recovered === 'boolean' && head ? { recovered: ack.recovered, head } : {};
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.loseWith?.(new TidingsConnectionLostError('socket.io: connection closed by the client'));
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }

  private async call(event: string, data: unknown): Promise<SocketIoAck> {
    if (this.ended || !this.socket.connected) throw new TidingsConnectionLostError(`socket.io: ${event} while not connected`);
    const acked = this.socket.timeout(this.options.ackTimeoutMs).emitWithAck(event, data) as Promise<SocketIoAck>;
    const ack = await Promise.race([acked, this.lost]);
    if (!ack || ack.ok !== true) {
      const failed = (ack ?? { ok: false, error: 'internal', message: 'no ack' }) as Extract<SocketIoAck, { ok: false }>;
      throw new TidingsAckError(failed.error, `${event}: ${failed.message}`, failed);
    }
    return ack;
  }

  private end(reason: string, auth?: AuthFailure): void {
    if (this.ended) return;
    this.ended = true;
    this.loseWith?.(new TidingsConnectionLostError(`socket.io: connection ended (${reason})`));
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.handlers.onClose(reason, auth);
  }
}
