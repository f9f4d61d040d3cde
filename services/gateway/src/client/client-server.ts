/**
 * The client port: raw Aphlict WebSockets on any path (instance from the `~` segment),
 * and a plain-HTTP 501 for everything else, which Phorge's setup check relies on. Other
 * transports (Socket.IO) attach to the same HTTP server beside it.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CLIENT_PORT_HTTP_BODY, CloseCode, instanceFromPath, type Logger } from '@tidings/protocol';
import { tokenFromUpgrade } from '@tidings/auth';
import type { TidingsNode } from '../node';
import { RawSocket } from './raw-socket';
import type { Admission, ClientAdmission } from './admission';

export interface ClientServerOptions {
  node: TidingsNode;
  logger: Logger;
  maxFrameBytes: number;
  maxBufferedBytes: number;
  /** Who may connect (shared with Socket.IO): limits, instances, tokens. */
  admission: ClientAdmission;
  /** Upgrades on this path prefix belong to another transport and are left alone. */
  foreignPathPrefix?: string;
}

export class ClientServer {
  private readonly wss: WebSocketServer;
  /** Open raw sockets and their WebSockets (to cut those that ignore a close at shutdown). */
  private readonly sockets = new Map<RawSocket, WebSocket>();
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
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.contain(socket, () => this.onUpgrade(req, socket, head)));
  }

  get connectionCount(): number {
    return this.sockets.size;
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

  /** Closes every socket with positions on (1012), so it reconnects and replays from its position. */
  resyncPositioned(): void {
    for (const socket of this.sockets.keys()) if (socket.positions) socket.close(CloseCode.RESYNC, 'replay from your position');
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
    let path = req.url ?? '/';
    const q = path.indexOf('?');
    if (q !== -1) path = path.slice(0, q);
    // Aphlict reads the raw pathname, undecoded; so do we.
    const instance = instanceFromPath(path);
    const admitted = this.options.admission.admit({
      instance,
      remoteAddress: req.socket.remoteAddress,
      forwardedFor: req.headers['x-forwarded-for'],
      token: tokenFromUpgrade(req.url, req.headers),
    });
    admitted.then(
      (admission) => this.contain(socket, () => this.onAdmission(admission, req, socket, head, instance)),
      (err: Error) => this.contain(socket, () => {
        throw err;
      }),
    );
  }

  private onAdmission(admission: Admission, req: IncomingMessage, socket: Duplex, head: Buffer, instance: string): void {
    const { node, logger } = this.options;
    if (!admission.ok) {
      node.counters.reject(admission.reason);
      logger.warn({ remote: req.socket.remoteAddress, instance: instance.slice(0, 128), reason: admission.reason }, `connection refused: ${admission.detail}`);
      const extra = admission.status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
      return refuse(socket, admission.status, STATUS_TEXT[admission.status], admission.message, extra);
    }
    // Gone while its token was checked.
    if (socket.destroyed) return admission.release();
    if (admission.grant?.sub) logger.debug({ sub: admission.grant.sub, instance }, 'client token accepted');
    let opened = false;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      opened = true;
      const raw = new RawSocket(instance, ws, node, logger, {
        maxBufferedBytes: this.options.maxBufferedBytes,
        maxFrameBytes: this.options.maxFrameBytes,
        grant: admission.grant,
      });
      this.sockets.set(raw, ws);
      node.hub.add(raw);
      node.instances.socketJoined(instance);
      ws.on('close', () => {
        this.sockets.delete(raw);
        node.instances.socketLeft(instance);
        admission.release();
        this.onSocketGone?.();
      });
    });
    // ws completes a handshake synchronously here, or answers it with an error (not a
    // WebSocket request) and opens nothing: then the slot is not held.
    if (!opened) admission.release();
  }

  /** Runs part of an upgrade's handling; a throw drops that connection, never the process. */
  private contain(socket: Duplex, handler: () => void): void {
    try {
      handler();
    } catch (err) {
      const e = err as Error;
      this.options.node.counters.internalError('upgrade');
      this.options.logger.error({ err: e.message, stack: e.stack }, 'upgrade handling failed; connection dropped');
      socket.destroy();
    }
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Answers an upgrade it will not take with a plain HTTP status, and closes. */
function refuse(socket: Duplex, status: number, text: string, why: string, extraHeaders = ''): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n${extraHeaders}Content-Type: text/plain\r\n\r\n${why}\n`);
}
