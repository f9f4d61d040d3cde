/**
 * One Socket.IO socket: decodes its events (a bad payload gets an error ack, never a crash or
 * a deaf socket), keeps its subscriptions as rooms under the per-socket cap, replays from
 * history with the same filter as raw sockets, and cuts it off when it reads too slowly.
 */
import type { Logger } from '@tidings/protocol';
import type { TidingsNode } from '../node';
import { decodePhids, decodeReplay, roomOf, splitArgs, type SocketIoAck } from './socketio-contract';
import type { SocketIoServer, TidingsIoSocket } from './socketio-server';

export interface SocketIoConnectionOptions {
  node: TidingsNode;
  logger: Logger;
  server: SocketIoServer;
  maxSubscriptions: number;
  /** Bytes queued in engine.io plus unsent in the WebSocket before the socket is cut off. */
  maxBufferedBytes: number;
}

const KNOWN_EVENTS = new Set(['subscribe', 'unsubscribe', 'replay']);

/** The engine.io transport's WebSocket, when the connection has upgraded to one. */
interface WsTransport {
  name: string;
  socket?: { bufferedAmount?: number; terminate?: () => void };
}

export class SocketIoConnection {
  private queuedBytes = 0;
  private cut = false;

  constructor(
    private readonly socket: TidingsIoSocket,
    private readonly options: SocketIoConnectionOptions,
  ) {
    socket.on('subscribe', (...args: unknown[]) => this.guard('subscribe', args, (data) => this.onSubscribe(data)));
    socket.on('unsubscribe', (...args: unknown[]) => this.guard('unsubscribe', args, (data) => this.onUnsubscribe(data)));
    socket.on('replay', (...args: unknown[]) => this.guard('replay', args, (data) => this.onReplay(data)));
    socket.onAny((event: string, ...args: unknown[]) => {
      if (KNOWN_EVENTS.has(event)) return;
      this.options.server.reject('unknown_event');
      splitArgs(args).ack({ ok: false, error: 'unknown_event', message: `unknown event ${JSON.stringify(String(event).slice(0, 64))}` });
    });
    this.watchBacklog();
  }

  get instance(): string {
    return this.socket.data.instance;
  }

  /** Closes the transport without a Socket.IO disconnect, so clients reconnect (shutdown drain). */
  dropTransport(): void {
    this.socket.conn.close();
  }

  private guard(event: string, args: unknown[], handle: (data: unknown) => Promise<SocketIoAck> | SocketIoAck): void {
    const { data, ack } = splitArgs(args);
    const answer = (a: SocketIoAck) => {
      if (!a.ok) {
        this.options.server.reject(a.error);
        this.options.logger.debug({ event, error: a.error, message: a.message }, 'socket.io event refused');
      }
      ack(a);
    };
    try {
      const result = handle(data);
      if (result instanceof Promise) {
        result.then(answer, (err: Error) => {
          this.options.logger.warn({ event, err: err.message }, 'socket.io event failed');
          answer({ ok: false, error: 'internal', message: `${event} failed` });
        });
      } else {
        answer(result);
      }
    } catch (err) {
      this.options.logger.warn({ event, err: (err as Error).message }, 'socket.io event failed');
      answer({ ok: false, error: 'internal', message: `${event} failed` });
    }
  }

  private async onSubscribe(data: unknown): Promise<SocketIoAck> {
    const decoded = decodePhids('subscribe', data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    // The subscriptions are the rooms the adapter holds for this socket (every adapter we use
    // joins synchronously), not a second copy here: that cost ~80 bytes per subscription.
    const joined = this.socket.rooms;
    const rooms = new Set<string>();
    let refused = 0;
    for (const phid of decoded.value) {
      const room = roomOf(this.instance, phid);
      if (joined.has(room) || rooms.has(room)) continue;
      if (this.held(joined) + rooms.size >= this.options.maxSubscriptions) {
        refused++;
        continue;
      }
      rooms.add(room);
    }
    if (rooms.size) await this.socket.join([...rooms]);
    if (refused) {
      this.options.logger.warn({ refused, held: this.held(this.socket.rooms) }, 'subscribe: cap reached, PHIDs ignored');
      return {
        ok: false,
        error: 'subscription_cap',
        message: `a socket holds at most ${this.options.maxSubscriptions} subscriptions; ${refused} PHIDs were not added`,
        added: rooms.size,
        refused,
      };
    }
    return { ok: true };
  }

  private async onUnsubscribe(data: unknown): Promise<SocketIoAck> {
    const decoded = decodePhids('unsubscribe', data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    for (const phid of decoded.value) {
      const room = roomOf(this.instance, phid);
      if (!this.socket.rooms.has(room)) continue;
      await this.socket.leave(room);
    }
    return { ok: true };
  }

  /** History newer than `age` that matches this socket's subscriptions, as `message` events, then the ack. */
  private async onReplay(data: unknown): Promise<SocketIoAck> {
    const decoded = decodeReplay(data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    let entries;
    try {
      entries = await this.options.node.replayEntries(this.instance, decoded.value, (phids) => phids.some((p) => this.socket.rooms.has(roomOf(this.instance, p))));
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'replay failed');
      return { ok: false, error: 'replay_failed', message: 'history is unavailable' };
    }
    this.options.server.counters.replays++;
    for (const entry of entries) {
      if (this.cut || !this.socket.connected) break;
      this.socket.emit('message', JSON.parse(entry.frame) as Record<string, unknown>);
    }
    return { ok: true, replayed: entries.length };
  }

  /** Subscriptions held: the socket's rooms but its own (Socket.IO puts every socket in a room named by its id). */
  private held(joined: ReadonlySet<string>): number {
    return joined.size - (joined.has(this.socket.id) ? 1 : 0);
  }

  /**
   * The slow-reader bound. engine.io queues packets while its transport is busy, and the
   * WebSocket holds what the kernel did not take yet; both together may not pass the bound.
   * Counted at packet creation, which happens for every recipient of a broadcast too.
   */
  private watchBacklog(): void {
    const conn = this.socket.conn;
    conn.on('packetCreate', (packet: { data?: unknown }) => {
      const d = packet.data;
      if (typeof d === 'string') this.queuedBytes += Buffer.byteLength(d);
      else if (d instanceof Uint8Array) this.queuedBytes += d.byteLength;
      const transport = conn.transport as unknown as WsTransport;
      const unsent = transport.name === 'websocket' ? (transport.socket?.bufferedAmount ?? 0) : 0;
      if (this.queuedBytes + unsent > this.options.maxBufferedBytes) this.cutOff(this.queuedBytes + unsent);
    });
    conn.on('flush', () => {
      this.queuedBytes = 0;
    });
  }

  private cutOff(pending: number): void {
    if (this.cut) return;
    this.cut = true;
    this.options.node.counters.slowReaderCloses++;
    this.options.server.counters.slowReaderCloses++;
    this.options.logger.warn({ pending }, 'slow reader: socket.io backlog over the bound, socket closed');
    // Deferred: this runs inside a broadcast's loop over the room.
    queueMicrotask(() => {
      const transport = this.socket.conn.transport as unknown as WsTransport;
      // A close frame would queue behind the backlog: cut the TCP connection instead.
      if (transport.name === 'websocket') transport.socket?.terminate?.();
      this.socket.conn.close(true);
    });
  }
}
