/**
 * The client port: raw Aphlict WebSockets on any path (instance from the `~` segment),
 * and a plain-HTTP 501 for everything else, which Phorge's setup check relies on. Other
 * transports (Socket.IO) attach to the same HTTP server beside it.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CLIENT_PORT_HTTP_BODY, instanceFromPath, type Logger } from '@tidings/protocol';
import type { TidingsNode } from '../node';
import { RawSocket } from './raw-socket';

export interface ClientServerOptions {
  node: TidingsNode;
  logger: Logger;
  maxFrameBytes: number;
  maxBufferedBytes: number;
  /** 0: no limit. */
  maxConnections: number;
  /** Connections of other transports on this node (Socket.IO), counted against maxConnections too. */
  otherConnections?: () => number;
  /** Upgrades on this path prefix belong to another transport and are left alone. */
  foreignPathPrefix?: string;
}

export class ClientServer {
  private readonly wss: WebSocketServer;
  /** Open raw sockets and their WebSockets (to cut those that ignore a close at shutdown). */
  private readonly sockets = new Map<RawSocket, WebSocket>();
  private accepting = true;
  /** Set while closeAll waits, to finish early when the last socket leaves. */
  private onSocketGone?: () => void;

  constructor(private readonly options: ClientServerOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  /** Serves raw sockets and the 501 on an HTTP(S) server. */
  attach(server: HttpServer): void {
    server.on('request', (req, res) => {
      if (res.headersSent || res.writableEnded) return; // another transport answered
      if (this.isForeign(req)) return;
      res.writeHead(501);
      res.end(CLIENT_PORT_HTTP_BODY);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      try {
        this.onUpgrade(req, socket, head);
      } catch (err) {
        const e = err as Error;
        this.options.node.counters.internalError('upgrade');
        this.options.logger.error({ err: e.message, stack: e.stack }, 'upgrade handling failed; connection dropped');
        socket.destroy();
      }
    });
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Stops taking new sockets. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Open raw sockets by instance (metrics). */
  connectionsByInstance(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const s of this.sockets.keys()) counts.set(s.instance, (counts.get(s.instance) ?? 0) + 1);
    return counts;
  }

  /**
   * Closes every socket with the code, spread over `windowMs` so clients reconnect to other
   * nodes gradually: socket i of n closes at a random moment of slot i (stratified jitter:
   * random, yet evenly spread however few sockets there are). Resolves when every socket
   * was told to close, early if they all went away by themselves.
   */
  async closeAll(code: number, reason: string, windowMs: number): Promise<void> {
    const sockets = [...this.sockets.keys()];
    // Shuffle so that the order of connection does not decide who leaves first.
    for (let i = sockets.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [sockets[i], sockets[j]] = [sockets[j], sockets[i]];
    }
    const slot = sockets.length > 0 ? windowMs / sockets.length : 0;
    const timers: NodeJS.Timeout[] = [];
    await new Promise<void>((resolve) => {
      let pending = sockets.length;
      if (pending === 0) return resolve();
      const done = () => {
        if (--pending === 0 || this.sockets.size === 0) resolve();
      };
      this.onSocketGone = () => {
        if (this.sockets.size === 0) resolve();
      };
      sockets.forEach((s, i) => {
        const delay = windowMs > 0 ? (i + Math.random()) * slot : 0;
        const timer = setTimeout(() => {
          s.close(code, reason);
          done();
        }, delay);
        timer.unref();
        timers.push(timer);
      });
    });
    this.onSocketGone = undefined;
    for (const t of timers) clearTimeout(t);
  }

  /** Cuts every socket still open (those that did not answer a close in time). */
  terminateAll(): void {
    for (const ws of this.sockets.values()) ws.terminate();
  }

  private isForeign(req: IncomingMessage): boolean {
    const prefix = this.options.foreignPathPrefix;
    return !!prefix && !!req.url && req.url.startsWith(prefix);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.isForeign(req)) return;
    // node:http takes its own error listener off a socket it hands to 'upgrade': without one,
    // a client that resets while we answer it would raise an uncaught 'error'.
    socket.on('error', (err) => this.options.logger.debug({ err: err.message }, 'upgrade socket error'));
    const { node, logger, maxConnections, otherConnections } = this.options;
    if (!this.accepting || (maxConnections > 0 && this.sockets.size + (otherConnections?.() ?? 0) >= maxConnections)) {
      const why = this.accepting ? 'too many connections' : 'shutting down';
      node.counters.reject(this.accepting ? 'connection_limit' : 'draining');
      logger.warn({ remote: req.socket.remoteAddress }, `connection refused: ${why}`);
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${why}\n`);
      return;
    }
    let path = req.url ?? '/';
    const q = path.indexOf('?');
    if (q !== -1) path = path.slice(0, q);
    // Aphlict reads the raw pathname, undecoded; so do we.
    const instance = instanceFromPath(path);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const raw = new RawSocket(instance, ws, node, logger, { maxBufferedBytes: this.options.maxBufferedBytes });
      this.sockets.set(raw, ws);
      node.hub.add(raw);
      node.connected(instance);
      ws.on('close', () => {
        this.sockets.delete(raw);
        this.onSocketGone?.();
      });
    });
  }
}
