/**
 * The client port: raw Aphlict WebSockets on any path (instance from the `~` segment),
 * and a plain-HTTP 501 for everything else, which Phorge's setup check relies on. Other
 * transports (Socket.IO) attach to the same HTTP server beside it.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
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
  /** Upgrades on this path prefix belong to another transport and are left alone. */
  foreignPathPrefix?: string;
}

export class ClientServer {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<RawSocket>();
  private accepting = true;

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
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Stops taking new sockets. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * Closes every socket with the code, spread over `windowMs` with jitter so clients
   * reconnect to other nodes gradually. Resolves when all are closed.
   */
  async closeAll(code: number, reason: string, windowMs: number): Promise<void> {
    const sockets = [...this.sockets];
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            const delay = windowMs > 0 ? Math.random() * windowMs : 0;
            const timer = setTimeout(() => {
              s.close(code, reason);
              resolve();
            }, delay);
            timer.unref();
          }),
      ),
    );
  }

  private isForeign(req: IncomingMessage): boolean {
    const prefix = this.options.foreignPathPrefix;
    return !!prefix && !!req.url && req.url.startsWith(prefix);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.isForeign(req)) return;
    const { node, logger, maxConnections } = this.options;
    if (!this.accepting || (maxConnections > 0 && this.sockets.size >= maxConnections)) {
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
      this.sockets.add(raw);
      node.hub.add(raw);
      node.connected(instance);
      ws.on('close', () => this.sockets.delete(raw));
    });
  }
}
