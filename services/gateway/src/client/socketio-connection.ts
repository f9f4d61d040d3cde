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
  private readonly phids = new Set<string>();
  private queuedBytes = 0;
  private cut = false;

  constructor(
    private readonly socket: TidingsIoSocket,
    private readonly options: SocketIoConnectionOptions,
  ) {
    socket.on('subscribe', (...args: unknown[]) => this.guard('subscribe', args, (data) => this.onSubscribe(data)));
    socket.on('unsubscribe', (...args: unknown[]) => this.guard('unsubscribe', args, (data) => this.onUnsubscribe(data)));
    socket.on('replay', (...args: unknown[]) => this.guard('replay', args, (data) => this.onReplay(data)));
    socket.onAny((event: string, ...args: unknown[]) =>
      this.contain('event', () => {
        if (KNOWN_EVENTS.has(event)) return;
        this.options.server.reject('unknown_event');
        splitArgs(args).ack({ ok: false, error: 'unknown_event', message: `unknown event ${JSON.stringify(String(event).slice(0, 64))}` });
      }),
    );
    this.watchBacklog();
  }

  /**
   * Runs one of this socket's handlers outside an event's own guard (backlog accounting, the
   * cut-off, unknown events). A throw is a defect in serving this socket: the socket is cut
   * off, the event logged and counted; nothing reaches engine.io's loop or the process.
   */
  private contain(during: string, handler: () => void): void {
    try {
      handler();
    } catch (err) {
      const e = err as Error;
      this.options.node.counters.internalError('socketio');
      this.options.logger.error({ err: e.message, stack: e.stack, during }, 'socket.io handler failed; socket closed');
      this.cut = true;
      try {
        this.socket.conn.close(true);
      } catch {
        // already closed
      }
    }
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
    const failed = (err: Error) => {
      this.options.node.counters.internalError('socketio');
      this.options.logger.warn({ event, err: err.message }, 'socket.io event failed');
      answer({ ok: false, error: 'internal', message: `${event} failed` });
    };
    this.contain(event, () => {
      let result: Promise<SocketIoAck> | SocketIoAck;
      try {
        result = handle(data);
      } catch (err) {
        return failed(err as Error);
      }
      // The continuation is contained too: an ack that throws must not become an unhandled rejection.
      if (result instanceof Promise) result.then((a) => this.contain(event, () => answer(a)), (err: Error) => this.contain(event, () => failed(err)));
      else answer(result);
    });
  }

  private async onSubscribe(data: unknown): Promise<SocketIoAck> {
    const decoded = decodePhids('subscribe', data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    const rooms: string[] = [];
    let refused = 0;
    for (const phid of decoded.value) {
      if (this.phids.has(phid)) continue;
      if (this.phids.size >= this.options.maxSubscriptions) {
        refused++;
        continue;
      }
      this.phids.add(phid);
      rooms.push(roomOf(this.instance, phid));
    }
    if (rooms.length) await this.socket.join(rooms);
    if (refused) {
      this.options.logger.warn({ refused, held: this.phids.size }, 'subscribe: cap reached, PHIDs ignored');
      return {
        ok: false,
        error: 'subscription_cap',
        message: `a socket holds at most ${this.options.maxSubscriptions} subscriptions; ${refused} PHIDs were not added`,
        added: rooms.length,
        refused,
      };
    }
    return { ok: true };
  }

  private async onUnsubscribe(data: unknown): Promise<SocketIoAck> {
    const decoded = decodePhids('unsubscribe', data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    for (const phid of decoded.value) {
      if (!this.phids.delete(phid)) continue;
      await this.socket.leave(roomOf(this.instance, phid));
    }
    return { ok: true };
  }

  /** History newer than `age` that matches this socket's subscriptions, as `message` events, then the ack. */
  private async onReplay(data: unknown): Promise<SocketIoAck> {
    const decoded = decodeReplay(data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    let entries;
    try {
      entries = await this.options.node.replayEntries(this.instance, decoded.value, (phids) => phids.some((p) => this.phids.has(p)));
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

  /**
   * The slow-reader bound. engine.io queues packets while its transport is busy, and the
   * WebSocket holds what the kernel did not take yet; both together may not pass the bound.
   * Counted at packet creation, which happens for every recipient of a broadcast too.
   */
  private watchBacklog(): void {
    const conn = this.socket.conn;
    conn.on('packetCreate', (packet: { data?: unknown }) =>
      this.contain('backlog', () => {
        const d = packet.data;
        if (typeof d === 'string') this.queuedBytes += Buffer.byteLength(d);
        else if (d instanceof Uint8Array) this.queuedBytes += d.byteLength;
        const transport = conn.transport as unknown as WsTransport;
        const unsent = transport.name === 'websocket' ? (transport.socket?.bufferedAmount ?? 0) : 0;
        if (this.queuedBytes + unsent > this.options.maxBufferedBytes) this.cutOff(this.queuedBytes + unsent);
      }),
    );
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
    queueMicrotask(() =>
      this.contain('cut-off', () => {
        const transport = this.socket.conn.transport as unknown as WsTransport;
        // A close frame would queue behind the backlog: cut the TCP connection instead.
        if (transport.name === 'websocket') transport.socket?.terminate?.();
        this.socket.conn.close(true);
      }),
    );
  }
}
