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
import { DEFAULT_INSTANCE, isValidInstance, type Envelope, type Logger, type TidingsConfig } from '@tidings/protocol';
import type { ExtraDelivery, TidingsNode } from '../node';
import { createSocketIoAdapter, type SocketIoAdapterHandle } from './socketio-adapter';
import { SocketIoConnection } from './socketio-connection';
import { roomOf, type ClientToServerEvents, type ServerToClientEvents } from './socketio-contract';

export { roomOf };

export interface SocketIoServerOptions {
  node: TidingsNode;
  logger: Logger;
  /** The config's `socketio`, `limits` and `redis` sections are read. */
  config: TidingsConfig;
  /** Raw Aphlict sockets open on this node; `limits.maxConnections` bounds both kinds together. */
  otherConnections?: () => number;
}

export interface SocketData {
  instance: string;
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
  private readonly perInstance = new Map<string, number>();
  private accepting = true;
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
    });
    // Both run inside engine.io's handling of a connection: a throw there would reach the process.
    this.io.use((socket, next) => {
      try {
        this.admit(socket, next);
      } catch (err) {
        this.internalError('admit', err as Error);
        next(new Error('internal error'));
      }
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

  get connectionCount(): number {
    return this.connections.size;
  }

  connectionsByInstance(): Map<string, number> {
    return new Map(this.perInstance);
  }

  instances(): Iterable<string> {
    return this.perInstance.keys();
  }

  /** Emits a message to this node's sockets in the rooms of its PHIDs; returns how many got it. */
  deliver(envelope: Envelope): number {
    const rooms = envelope.subscribers.map((phid) => roomOf(envelope.instance, phid));
    const count = this.countLocal(rooms);
    if (count === 0) return 0;
    try {
      // One parse per node and message; Socket.IO encodes the packet once for all recipients.
      this.io.local.to(rooms).emit('message', JSON.parse(envelope.frame) as Record<string, unknown>);
    } catch (err) {
      // Contained here so the node's other transports still deliver this message.
      this.internalError('deliver', err as Error);
      return 0;
    }
    this.counters.deliveries += count;
    return count;
  }

  private internalError(during: string, err: Error): void {
    this.options.node.counters.internalError('socketio');
    this.options.logger.error({ err: err.message, stack: err.stack, during }, 'socket.io handling failed');
  }

  /** Stops taking new sockets (they get a connect_error "shutting down"). */
  stopAccepting(): void {
    this.accepting = false;
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

  /** Middleware: instance from `auth`, connection limit, draining. */
  private admit(socket: TidingsIoSocket, next: (err?: Error) => void): void {
    const { logger, config, otherConnections } = this.options;
    if (!this.accepting) {
      this.reject('draining');
      return next(new Error('shutting down'));
    }
    const max = config.limits.maxConnections;
    if (max > 0 && this.connections.size + (otherConnections?.() ?? 0) >= max) {
      this.reject('connection_limit');
      logger.warn({ remote: socket.handshake.address }, 'socket.io connection refused: too many connections');
      return next(new Error('too many connections'));
    }
    const auth = socket.handshake.auth as { instance?: unknown } | undefined;
    const asked = auth?.instance;
    if (asked === undefined || asked === null || asked === '') {
      socket.data.instance = DEFAULT_INSTANCE;
    } else if (typeof asked === 'string' && isValidInstance(asked)) {
      socket.data.instance = asked;
    } else {
      this.reject('invalid_instance');
      return next(new Error('invalid instance: a string of 1-128 characters without spaces, "/" or "~"'));
    }
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
    });
    this.connections.set(socket.id, connection);
    this.perInstance.set(instance, (this.perInstance.get(instance) ?? 0) + 1);
    this.counters.connectionsTotal++;
    socket.once('disconnect', () => {
      this.connections.delete(socket.id);
      const left = (this.perInstance.get(instance) ?? 1) - 1;
      if (left) this.perInstance.set(instance, left);
      else this.perInstance.delete(instance);
    });
  }

  private async doClose(drainMs: number): Promise<void> {
    this.accepting = false;
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
