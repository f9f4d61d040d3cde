/**
 * A gateway process's parts and their lifecycle: the node (message path), its servers
 * (admin and client, any number of each, TLS or not), history, bus and relay. start()
 * listens; close() drains in order: stop accepting, close client sockets with 1001 over
 * the drain window, finish relays, close the bus and history, close the servers.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { CloseCode, type Logger, type TidingsConfig } from '@tidings/protocol';
import { MemoryHistory, type HistoryStore } from '@tidings/history';
import type { Bus } from '@tidings/bus';
import type { Relay } from '@tidings/relay';
import { TidingsNode } from './node';
import { createAdminApp } from './admin/admin-app';
import { StatusReporter } from './admin/status';
import { ClientServer } from './client/client-server';
import { SocketIoServer } from './client/socketio-server';
import { readTls } from './config';
import { VERSION } from './version';

export interface GatewayOptions {
  config: TidingsConfig;
  logger: Logger;
  /** Fixed fingerprint (tests). */
  fingerprint?: string;
  /** Collaborators; the defaults come from the config. */
  history?: HistoryStore;
  bus?: Bus;
  relay?: Relay;
}

export interface ListeningServer {
  type: 'client' | 'admin';
  address: AddressInfo;
  tls: boolean;
  /** http://host:port or ws://host:port (https/wss with TLS), with 127.0.0.1 for wildcard listens. */
  url: string;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

export class Gateway {
  readonly node: TidingsNode;
  readonly status: StatusReporter;
  readonly servers: ListeningServer[] = [];
  private readonly clientServer: ClientServer;
  /** Socket.IO on the client servers (config `socketio.enabled`). */
  readonly socketio?: SocketIoServer;
  private readonly httpServers: { type: 'client' | 'admin'; server: http.Server; tls: boolean; port: number; listen: string }[] = [];
  private state: State = 'new';
  private closing?: Promise<void>;
  private readonly logger: Logger;

  constructor(private readonly options: GatewayOptions) {
    const { config, logger } = options;
    this.logger = logger;
    const history =
      options.history ?? new MemoryHistory({ maxMessages: config.history.maxMessages, maxAgeMs: config.history.maxAgeMs });
    this.node = new TidingsNode({
      history,
      historyMaxAgeMs: config.history.maxAgeMs,
      maxSubscriptionsPerSocket: config.limits.maxSubscriptionsPerSocket,
      logger,
      bus: options.bus,
      relay: options.relay,
      fingerprint: options.fingerprint,
    });
    this.status = new StatusReporter(this.node, VERSION);
    if (options.relay) {
      const relay = options.relay;
      this.status.add('relay.peers', () => relay.status());
    }
    if (options.bus) {
      const bus = options.bus;
      this.status.add('bus', () => ({ connected: bus.isConnected, nodeId: bus.nodeId }));
    }
    this.clientServer = new ClientServer({
      node: this.node,
      logger: logger.child({ server: 'client' }),
      maxFrameBytes: config.limits.maxFrameBytes,
      maxBufferedBytes: config.limits.maxBufferedBytes,
      maxConnections: config.limits.maxConnections,
      foreignPathPrefix: config.socketio.enabled ? config.socketio.path : undefined,
    });
    if (config.socketio.enabled) {
      const socketio = new SocketIoServer({
        node: this.node,
        logger: logger.child({ server: 'client', transport: 'socket.io' }),
        config,
        otherConnections: () => this.clientServer.connectionCount,
      });
      this.socketio = socketio;
      this.node.addDelivery(socketio);
      this.status.add('socketio', () => socketio.status());
    }
    const adminApp = createAdminApp({
      node: this.node,
      status: this.status,
      logger: logger.child({ server: 'admin' }),
      maxBodyBytes: config.limits.maxBodyBytes,
    });
    config.servers.forEach((spec, index) => {
      const tls = readTls(spec, index);
      const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }) : http.createServer();
      if (spec.type === 'admin') server.on('request', adminApp);
      else {
        this.clientServer.attach(server);
        this.socketio?.attach(server);
      }
      this.httpServers.push({ type: spec.type, server, tls: !!tls, port: spec.port, listen: spec.listen ?? '0.0.0.0' });
    });
  }

  get isRunning(): boolean {
    return this.state === 'running';
  }

  get clientConnections(): number {
    return this.clientServer.connectionCount;
  }

  /** First server of a type, for tests and tools. */
  url(type: 'client' | 'admin'): string {
    const server = this.servers.find((s) => s.type === type);
    if (!server) throw new Error(`gateway: no ${type} server is listening`);
    return server.url;
  }

  async start(): Promise<this> {
    if (this.state !== 'new') throw new Error(`gateway: start() in state ${this.state}`);
    this.state = 'starting';
    await this.options.bus?.start();
    for (const { type, server, tls, port, listen } of this.httpServers) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, listen, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
      const scheme = type === 'admin' ? (tls ? 'https' : 'http') : tls ? 'wss' : 'ws';
      const hostPart = host.includes(':') ? `[${host}]` : host;
      this.servers.push({ type, address, tls, url: `${scheme}://${hostPart}:${address.port}` });
      this.logger.info({ type, address: address.address, port: address.port, tls }, `${type} server listening`);
    }
    this.state = 'running';
    this.logger.info({ fingerprint: this.node.fingerprint, version: VERSION }, 'gateway started');
    return this;
  }

  /**
   * Stops the gateway. `drainMs` spreads the 1001 closes of client sockets over a window
   * (0: all at once). Idempotent: later calls return the first call's promise.
   */
  close(drainMs = 0): Promise<void> {
    this.closing ??= this.doClose(drainMs);
    return this.closing;
  }

  private async doClose(drainMs: number): Promise<void> {
    this.state = 'closing';
    const started = Date.now();
    this.clientServer.stopAccepting();
    this.socketio?.stopAccepting();
    for (const { server, type } of this.httpServers) {
      if (type === 'client') server.close();
    }
    await Promise.all([
      this.clientServer.closeAll(CloseCode.GOING_AWAY, 'server shutting down', drainMs),
      this.socketio?.close(drainMs),
    ]);
    await this.options.relay?.close();
    await this.options.bus?.close();
    await this.node.history.close();
    await Promise.all(
      this.httpServers.map(
        ({ server }) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
            // Sockets that do not answer the close handshake in time are cut.
            setTimeout(() => server.closeAllConnections(), 1_000).unref();
          }),
      ),
    );
    this.state = 'closed';
    this.logger.info({ ms: Date.now() - started }, 'gateway closed');
  }
}
