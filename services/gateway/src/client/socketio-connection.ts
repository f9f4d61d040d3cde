/**
 * One Socket.IO socket: decodes its events (a bad payload gets an error ack, never a crash or
 * a deaf socket), keeps its subscriptions as rooms under the per-socket cap, replays from
 * history with the same filter as raw sockets, and cuts it off when it reads too slowly.
 */
import type { Logger, ReplayRequest } from '@tidings/protocol';
import type { TidingsNode } from '../node';
import { watchExpiry } from './admission';
import { decodePhids, decodeReplay, positionedRoomOf, roomOf, splitArgs, type SocketIoAck } from './socketio-contract';
import type { SocketIoServer, TidingsIoSocket } from './socketio-server';

export interface SocketIoConnectionOptions {
  node: TidingsNode;
  logger: Logger;
  server: SocketIoServer;
  maxSubscriptions: number;
  /** Bytes queued in engine.io plus unsent in the WebSocket before the socket is cut off. */
  maxBufferedBytes: number;
  /** limits.maxFrameBytes, named in the log line when a frame passes it. */
  maxFrameBytes: number;
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
  /** Subscriptions this socket took from the node's budget; given back when it leaves. */
  private budgetHeld = 0;
  private replaying = false;

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
    if (this.positioned) {
      // Where the instance's history is now: the client's starting position.
      options.node.head(this.instance).then(
        (head) => this.contain('positions', () => void socket.emit('positions', head)),
        (err: Error) => options.logger.warn({ err: err.message }, 'positions: history head unavailable'),
      );
    }
    // At the token's expiry the connection ends; the client gets a fresh token and reconnects.
    const stopExpiry = watchExpiry(socket.data.grant, () =>
      this.contain('expiry', () => {
        this.options.logger.info({ sub: socket.data.grant?.sub }, 'client token expired: socket.io socket disconnected');
        socket.disconnect(true);
      }),
    );
    socket.once('disconnect', () => {
      stopExpiry();
      this.options.node.subscriptions.release(this.budgetHeld);
      this.budgetHeld = 0;
    });
    socket.conn.on('close', (reason: string, description?: { message?: string }) =>
      this.contain('close', () => {
        // engine.io reports ws's maxPayload refusal (ws closes with 1009) as a transport error.
        if (reason === 'transport error' && /Max payload size exceeded/.test(description?.message ?? '')) this.frameTooLarge();
      }),
    );
  }

  private frameTooLarge(): void {
    const limit = this.options.maxFrameBytes;
    this.options.server.reject('frame_too_large');
    this.options.logger.warn(
      { limit, setting: 'limits.maxFrameBytes', env: 'TIDINGS_LIMITS_MAX_FRAME_BYTES' },
      `frame over limits.maxFrameBytes (${limit} bytes): socket closed with 1009; raise limits.maxFrameBytes to accept larger frames`,
    );
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

  /** Whether it connected with positions on (auth {positions: true}). */
  get positioned(): boolean {
    return this.socket.data.positions === true;
  }

  /** The room of one of its subscriptions (sockets with positions on have rooms of their own). */
  private room(phid: string): string {
    return this.positioned ? positionedRoomOf(this.instance, phid) : roomOf(this.instance, phid);
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
    let phids = decoded.value;
    let forbidden: string[] = [];
    const grant = this.socket.data.grant;
    if (grant && !grant.allowsAll) {
      const split = grant.filter(phids);
      phids = split.allowed;
      forbidden = split.refused;
    }
    // The subscriptions are the rooms the adapter holds for this socket (every adapter we use
    // joins synchronously), not a second copy here: that cost ~80 bytes per subscription.
    const joined = this.socket.rooms;
    const rooms = new Set<string>();
    let refused = 0;
    let refusedByNode = 0;
    const budget = this.options.node.subscriptions;
    for (const phid of phids) {
      const room = this.room(phid);
      if (joined.has(room) || rooms.has(room)) continue;
      if (this.held(joined) + rooms.size >= this.options.maxSubscriptions) {
        refused++;
        continue;
      }
      if (!budget.take()) {
        refusedByNode++;
        continue;
      }
      rooms.add(room);
    }
    this.budgetHeld += rooms.size;
    if (rooms.size) {
      await this.socket.join([...rooms]);
      // With interest routing, acknowledged only once the new rooms route messages here.
      await this.options.node.routed();
    }
    if (refusedByNode) {
      this.options.node.counters.reject('node_subscription_cap');
      this.options.logger.warn(
        { refused: refusedByNode, nodeHeld: budget.held, setting: 'limits.maxSubscriptionsPerNode' },
        'subscribe: the node holds limits.maxSubscriptionsPerNode subscriptions, PHIDs ignored',
      );
      return {
        ok: false,
        error: 'subscription_cap',
        message: `this server holds as many subscriptions as it allows (limits.maxSubscriptionsPerNode); ${refusedByNode} PHIDs were not added`,
        added: rooms.size,
        refused: refusedByNode + refused + forbidden.length,
      };
    }
    if (forbidden.length) {
      // Counted per PHID, as on raw sockets; the reject() of the ack counts the event once.
      this.options.node.counters.reject('forbidden_phid', forbidden.length);
      this.options.logger.warn({ sub: grant?.sub, refused: forbidden.length }, 'subscribe: PHIDs the token does not cover were refused');
      return {
        ok: false,
        error: 'forbidden',
        message: `the connection's token does not cover ${forbidden.length} of these PHIDs; the others were subscribed`,
        added: rooms.size,
        refused: forbidden,
      };
    }
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
      const room = this.room(phid);
      if (!this.socket.rooms.has(room)) continue;
      this.budgetHeld--;
      this.options.node.subscriptions.release();
      await this.socket.leave(room);
    }
    return { ok: true };
  }

  /**
   * History newer than `age` that matches this socket's subscriptions, as `message` events,
   * then the ack. One replay at a time per socket: one asked while another runs is refused
   * (`replay_in_progress`), so a client cannot pile up history reads. (Raw sockets queue
   * theirs instead, as their frames are handled strictly in order.)
   */
  private async onReplay(data: unknown): Promise<SocketIoAck> {
    const decoded = decodeReplay(data);
    if (!decoded.ok) return { ok: false, error: 'invalid_payload', message: decoded.message };
    if (this.replaying) return { ok: false, error: 'replay_in_progress', message: 'a replay of this socket is still running; ask again after its ack' };
    this.replaying = true;
    try {
      return await this.replay(decoded.value);
    } finally {
      this.replaying = false;
    }
  }

  private async replay(request: ReplayRequest): Promise<SocketIoAck> {
    let result;
    try {
      result = await this.options.node.replayFor(this.instance, request, (phids) => phids.some((p) => this.socket.rooms.has(this.room(p))));
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'replay failed');
      return { ok: false, error: 'replay_failed', message: 'history is unavailable' };
    }
    this.options.server.counters.replays++;
    const withPositions = this.positioned || request.kind === 'since';
    for (const entry of result.entries) {
      if (this.cut || !this.socket.connected) break;
      const payload = JSON.parse(entry.frame) as Record<string, unknown>;
      if (withPositions && entry.position) this.socket.emit('message', payload, entry.position);
      else this.socket.emit('message', payload);
    }
    const ack: SocketIoAck = { ok: true, replayed: result.entries.length };
    if (result.after) Object.assign(ack, { recovered: result.after.recovered, offset: result.after.head.offset, epoch: result.after.head.epoch });
    return ack;
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
