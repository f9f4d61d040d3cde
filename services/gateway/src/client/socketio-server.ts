/**
 * Socket.IO on the client port, beside the raw Aphlict sockets: one engine.io server attached
 * to every client HTTP(S) server at `socketio.path`. The raw ClientServer leaves that path
 * alone, and the engine is attached with `destroyUpgrade: false`, so it never touches upgrades
 * on other paths: each request and upgrade is answered by exactly one of the two.
 *
 * Rooms are per (instance, PHID). The node calls deliver() for every message it delivers
 * locally (its own publishes, the bus, the relay), and deliver() emits with `io.local`, so the
 * adapter never carries notifications: see socketio-adapter.ts for why.
 */
import type { Server as HttpServer } from 'node:http';
import { Server as IoServer, type Socket } from 'socket.io';
import { DEFAULT_INSTANCE, INSTANCE_RULE, type Envelope, type Logger, type TidingsConfig } from '@tidings/protocol';
import { tokenFromSocketIoAuth, type Grant } from '@tidings/auth';
import type { ClientAdmission } from './admission';
import type { Audience, ExtraDelivery, TidingsNode } from '../node';
import { createSocketIoAdapter, type SocketIoAdapterHandle } from './socketio-adapter';
import { SocketIoConnection } from './socketio-connection';
import { positionedRoomOf, roomOf, type ClientToServerEvents, type ServerToClientEvents } from './socketio-contract';

export { roomOf };

export interface SocketIoServerOptions {
  node: TidingsNode;
  logger: Logger;
  /** The config's `socketio`, `limits` and `redis` sections are read. */
  config: TidingsConfig;
  /** Who may connect (shared with raw sockets): limits, instances, tokens. */
  admission: ClientAdmission;
}

export interface SocketData {
  instance: string;
  /** What the connection's token allows; undefined when tokens are off. */
  grant?: Grant;
  /** Frees the connection's per-address slot. */
  release?: () => void;
  /** It asked for positions (auth {positions: true}). */
  positions?: boolean;
}

export type TidingsIoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Counters of the `socketio` section in /status/. */
export interface SocketIoCounters {
  connectionsTotal: number;
  deliveries: number;
  replays: number;
  slowReaderCloses: number;
  rejected: Map<string, number>;
}

export class SocketIoServer implements ExtraDelivery {
  readonly io: IoServer<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
  readonly counters: SocketIoCounters = { connectionsTotal: 0, deliveries: 0, replays: 0, slowReaderCloses: 0, rejected: new Map() };
  private readonly adapter: SocketIoAdapterHandle;
  private readonly connections = new Map<string, SocketIoConnection>();
  /** Sockets with positions on now (their rooms are looked up only while there are some). */
  private positionedSockets = 0;
  private readonly perInstance = new Map<string, number>();
  private attached = false;
  private closing?: Promise<void>;

  constructor(private readonly options: SocketIoServerOptions) {
    const { config, logger } = options;
    this.adapter = createSocketIoAdapter(config, logger);
    this.io = new IoServer({
      path: config.socketio.path,
      serveClient: false,
      adapter: this.adapter.adapter,
      maxHttpBufferSize: config.limits.maxFrameBytes,
      perMessageDeflate: false,
      // Upgrades on other paths belong to the raw Aphlict sockets: never end them.
      destroyUpgrade: false,
      // A connection that never joins the namespace is closed after this (default 45 s).
      connectTimeout: 10_000,
    });
    // Both run inside engine.io's handling of a connection: a throw there would reach the process.
    // The node routes by the rooms' (instance, PHID): Socket.IO's adapter says when one is
    // created (first socket) or deleted (last one left). Socket ids are rooms too: no `~`.
    const rooms = this.io.of('/').adapter;
    rooms.on('create-room', (room: string) => this.roomChanged(room, 1));
    rooms.on('delete-room', (room: string) => this.roomChanged(room, -1));
    this.io.use((socket, next) => {
      this.admit(socket, next).catch((err: Error) => {
        this.internalError('admit', err);
        next(new Error('internal error'));
      });
    });
    this.io.on('connection', (socket) => {
      try {
        this.onConnection(socket);
      } catch (err) {
        this.internalError('connection', err as Error);
        socket.disconnect(true);
      }
    });
  }

  /** Serves Socket.IO on an HTTP(S) server at the configured path. */
  attach(server: HttpServer): void {
    // The first server creates the engine; later ones share it, so one set of rooms serves all.
    if (!this.attached) this.io.attach(server);
    else this.io.engine.attach(server, { path: this.options.config.socketio.path, destroyUpgrade: false });
    this.attached = true;
  }

  get kind(): SocketIoAdapterHandle['kind'] {
    return this.adapter.kind;
  }

  /**
   * Connections held: engine.io's, which include those that have not joined the namespace
   * yet (they hold a socket all the same), against limits.maxConnections.
   */
  get connectionCount(): number {
    return Math.max(this.connections.size, this.io.engine?.clientsCount ?? 0);
  }

  connectionsByInstance(): Map<string, number> {
    return new Map(this.perInstance);
  }

  instances(): Iterable<string> {
    return this.perInstance.keys();
  }

  /**
   * Emits a message to this node's sockets in the rooms of its PHIDs; returns how many got
   * it. Sockets with positions on sit in rooms of their own and get the position as the
   * message's second argument. One parse per node and message; Socket.IO encodes each
   * packet once for all its recipients.
   */
  deliver(envelope: Envelope, audience: Audience): number {
    let sent = 0;
    let payload: Record<string, unknown> | undefined;
    const parsed = () => (payload ??= JSON.parse(envelope.frame) as Record<string, unknown>);
    try {
      if (audience !== 'positioned') {
        const rooms = envelope.subscribers.map((phid) => roomOf(envelope.instance, phid));
        const count = this.countLocal(rooms);
        if (count > 0) {
          this.io.local.to(rooms).emit('message', parsed());
          sent += count;
        }
      }
      if (audience !== 'plain' && this.positionedSockets > 0) {
        const rooms = envelope.subscribers.map((phid) => positionedRoomOf(envelope.instance, phid));
        const count = this.countLocal(rooms);
        if (count > 0) {
          if (envelope.position) this.io.local.to(rooms).emit('message', parsed(), envelope.position);
          else this.io.local.to(rooms).emit('message', parsed());
          sent += count;
        }
      }
    } catch (err) {
      // Contained here so the node's other transports still deliver this message.
      this.internalError('deliver', err as Error);
    }
    this.counters.deliveries += sent;
    return sent;
  }

  /** Drops the transport of every socket with positions on, so it replays from its position. */
  resyncPositioned(): void {
    for (const connection of this.connections.values()) if (connection.positioned) connection.dropTransport();
  }

  /** `instance~PHID` and `~instance~PHID` (positions on) are subscriptions; other rooms are not ours. */
  private roomChanged(room: string, delta: 1 | -1): void {
    const name = room.startsWith('~') ? room.slice(1) : room;
    const tilde = name.indexOf('~');
    if (tilde <= 0) return;
    this.options.node.interestChanged(name.slice(0, tilde), name.slice(tilde + 1), delta);
  }

  private internalError(during: string, err: Error): void {
    this.options.node.counters.internalError('socketio');
    this.options.logger.error({ err: err.message, stack: err.stack, during }, 'socket.io handling failed');
  }


  /**
   * Closes every socket's transport, spread over `drainMs` with jitter: clients see a
   * transport close and reconnect (to another node), as raw sockets do on 1001. Then closes
   * the engine and the adapter's Redis clients. Idempotent.
   */
  close(drainMs = 0): Promise<void> {
    this.closing ??= this.doClose(drainMs);
    return this.closing;
  }

  status(): Record<string, unknown> {
    const c = this.counters;
    return {
      enabled: true,
      path: this.options.config.socketio.path,
      ...this.adapter.status(),
      active: this.connections.size,
      activeByInstance: Object.fromEntries(this.perInstance),
      total: c.connectionsTotal,
      deliveries: c.deliveries,
      replays: c.replays,
      slowReaderCloses: c.slowReaderCloses,
      rejected: Object.fromEntries(c.rejected),
    };
  }

  reject(reason: string): void {
    this.counters.rejected.set(reason, (this.counters.rejected.get(reason) ?? 0) + 1);
    this.options.node.counters.reject(`socketio_${reason}`);
  }

  private countLocal(rooms: string[]): number {
    const index = this.io.of('/').adapter.rooms;
    if (rooms.length === 1) return index.get(rooms[0])?.size ?? 0;
    let only: Set<string> | undefined;
    let union: Set<string> | undefined;
    for (const room of rooms) {
      const ids = index.get(room);
      if (!ids || !ids.size) continue;
      if (!only) only = ids;
      else {
        union ??= new Set(only);
        for (const id of ids) union.add(id);
      }
    }
    return (union ?? only)?.size ?? 0;
  }

  /** Middleware: the instance from `auth`, then the shared admission (limits, instances, token). */
  private async admit(socket: TidingsIoSocket, next: (err?: Error) => void): Promise<void> {
    const { logger, admission } = this.options;
    const auth = socket.handshake.auth as { instance?: unknown; token?: unknown } | undefined;
    const asked = auth?.instance;
    let instance: string;
    if (asked === undefined || asked === null || asked === '') instance = DEFAULT_INSTANCE;
    else if (typeof asked === 'string') instance = asked;
    else {
      this.reject('invalid_instance');
      return next(new Error(`invalid instance: ${INSTANCE_RULE}`));
    }
    const admitted = await admission.admit({
      instance,
      remoteAddress: socket.handshake.address,
      forwardedFor: socket.handshake.headers['x-forwarded-for'],
      token: tokenFromSocketIoAuth(auth),
      counted: true,
    });
    if (!admitted.ok) {
      this.reject(admitted.reason);
      logger.warn({ remote: socket.handshake.address, reason: admitted.reason }, `socket.io connection refused: ${admitted.detail}`);
      const message = admitted.reason === 'invalid_instance' ? `invalid instance: ${INSTANCE_RULE}` : admitted.message;
      const err = new Error(message) as Error & { data?: unknown };
      if (admitted.status === 401) err.data = { reason: admitted.reason.replace(/^token_/, '') };
      return next(err);
    }
    // Gone while its token was checked.
    if (socket.conn.readyState === 'closed') return admitted.release();
    socket.data.instance = instance;
    socket.data.positions = (auth as { positions?: unknown } | undefined)?.positions === true;
    socket.data.grant = admitted.grant;
    socket.data.release = admitted.release;
    next();
  }

  private onConnection(socket: TidingsIoSocket): void {
    const { node, logger, config } = this.options;
    const instance = socket.data.instance;
    const connection = new SocketIoConnection(socket, {
      node,
      logger,
      server: this,
      maxSubscriptions: config.limits.maxSubscriptionsPerSocket,
      maxBufferedBytes: config.limits.maxBufferedBytes,
      maxFrameBytes: config.limits.maxFrameBytes,
    });
    this.connections.set(socket.id, connection);
    this.perInstance.set(instance, (this.perInstance.get(instance) ?? 0) + 1);
    node.instances.socketJoined(instance);
    this.counters.connectionsTotal++;
    if (connection.positioned) {
      this.positionedSockets++;
      node.positionsChanged(1);
    }
    socket.once('disconnect', (reason) => {
      // Only one namespace is served: a client that leaves it is done with the connection,
      // which would otherwise stay open, and uncounted, past limits.maxConnections.
      if (reason === 'client namespace disconnect') socket.conn.close();
      this.connections.delete(socket.id);
      if (connection.positioned) {
        this.positionedSockets--;
        node.positionsChanged(-1);
      }
      node.instances.socketLeft(instance);
      socket.data.release?.();
      const left = (this.perInstance.get(instance) ?? 1) - 1;
      if (left) this.perInstance.set(instance, left);
      else this.perInstance.delete(instance);
    });
  }

  private async doClose(drainMs: number): Promise<void> {
    const connections = [...this.connections.values()];
    await Promise.all(
      connections.map(
        (c) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(
              () => {
                c.dropTransport();
                resolve();
              },
              drainMs > 0 ? Math.random() * drainMs : 0,
            );
            timer.unref();
          }),
      ),
    );
    // io.close() also closes the adapter, which unsubscribes through Redis: bounded, as Redis may be down.
    await Promise.race([this.io.close(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    await this.adapter.close();
  }
}
