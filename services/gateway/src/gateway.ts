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
import { evaluateReadiness, healthRoutes, type Readiness } from './admin/health';
import { GatewayMetrics } from './admin/metrics';
import { BusCanary } from './canary';
import { ClientServer } from './client/client-server';
import { ClientAdmission } from './client/admission';
import { createAuthCollaborators, type AuthCollaborators } from './wiring-auth';
import { SocketIoServer } from './client/socketio-server';
import { ConsoleService } from './console/console-service';
import { readTls } from './config';
import { VERSION } from './version';

export interface GatewayOptions {
  config: TidingsConfig;
  logger: Logger;
  /** Fixed fingerprint (tests). */
  fingerprint?: string;
  /** Collaborators; the defaults come from the config. */
  history?: HistoryStore;
  /** Admin gate, client tokens, client addresses, publish limiter; default: from config (reads key files). */
  auth?: AuthCollaborators;
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

/** How long a server waits at close for requests in flight and close handshakes before cutting them. */
const SERVER_CLOSE_GRACE_MS = 3_000;

/** Stops accepting; resolves once every connection of the server has ended. */
function stopListening(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** Waits for a closing server's connections, cutting those still open after `graceMs`. */
async function finishConnections(server: http.Server, closed: Promise<void>, graceMs: number): Promise<void> {
  server.closeIdleConnections();
  const cut = setTimeout(() => server.closeAllConnections(), graceMs);
  cut.unref();
  await closed;
  clearTimeout(cut);
}

export class Gateway {
  readonly node: TidingsNode;
  readonly status: StatusReporter;
  readonly servers: ListeningServer[] = [];
  readonly metrics: GatewayMetrics;
  /** Sends canaries through the bus for readiness; absent without a bus. */
  readonly canary?: BusCanary;
  /** The operators' console at /console/ on the admin port. */
  readonly console: ConsoleService;
  private readonly clientServer: ClientServer;
  private readonly admission: ClientAdmission;
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
      maxSubscriptionsPerNode: config.limits.maxSubscriptionsPerNode,
      maxInstances: config.limits.maxInstances,
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
      this.status.add('bus', () => ({ connected: bus.isConnected, nodeId: bus.nodeId, ...bus.describe?.() }));
    }
    const auth = options.auth ?? createAuthCollaborators(config);
    this.admission = new ClientAdmission({
      node: this.node,
      auth,
      maxConnections: config.limits.maxConnections,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      openConnections: () => this.clientServer.connectionCount + (this.socketio?.connectionCount ?? 0),
    });
    this.clientServer = new ClientServer({
      node: this.node,
      logger: logger.child({ server: 'client' }),
      maxFrameBytes: config.limits.maxFrameBytes,
      maxBufferedBytes: config.limits.maxBufferedBytes,
      admission: this.admission,
      foreignPathPrefix: config.socketio.enabled ? config.socketio.path : undefined,
    });
    this.node.resyncHandlers.push(() => this.clientServer.resyncPositioned());
    if (config.socketio.enabled) {
      const socketio = new SocketIoServer({
        node: this.node,
        logger: logger.child({ server: 'client', transport: 'socket.io' }),
        config,
        admission: this.admission,
      });
      this.socketio = socketio;
      this.node.addDelivery(socketio);
      this.node.resyncHandlers.push(() => socketio.resyncPositioned());
      this.status.add('socketio', () => socketio.status());
    }
    if (options.bus) {
      this.canary = new BusCanary({
        bus: options.bus,
        logger: logger.child({ part: 'canary' }),
        intervalMs: config.health.canaryIntervalMs,
        maxAgeMs: config.health.canaryMaxAgeMs,
        onRoundTrip: (ms) => this.metrics.observeBusRoundTrip(ms),
      });
      const canary = this.canary;
      this.status.add('canary', () => canary.snapshot());
    }
    this.status.add('ready', () => this.readiness());
    this.metrics = new GatewayMetrics({
      node: this.node,
      bus: options.bus,
      relay: options.relay,
      isReady: () => this.readiness().ready,
    });
    this.metrics.addConnections('raw', () => this.clientServer.connectionsByInstance());
    if (this.socketio) {
      const socketio = this.socketio;
      this.metrics.addConnections('socket.io', () => socketio.connectionsByInstance());
    }
    this.console = new ConsoleService({
      config,
      logger: logger.child({ part: 'console' }),
      node: this.node,
      version: VERSION,
      readiness: () => this.readiness(),
      connections: () => ({ raw: this.clientServer.connectionsByInstance(), 'socket.io': this.socketio?.connectionsByInstance() }),
      servers: () => this.servers,
      bus: options.bus,
      canary: this.canary,
      relay: options.relay,
    });
    const adminApp = createAdminApp({
      node: this.node,
      status: this.status,
      logger: logger.child({ server: 'admin' }),
      maxBodyBytes: config.limits.maxBodyBytes,
      auth,
      openRoutes: this.console.servePage,
      extraRoutes: (app) => {
        healthRoutes(() => this.readiness())(app);
        this.metrics.routes()(app);
        this.console.routes()(app);
      },
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

  /** Ready for traffic: listening, not draining, and (with a bus) delivery proven by the canary. */
  readiness(): Readiness {
    return evaluateReadiness({ state: () => this.state, bus: this.options.bus, canary: this.canary });
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
    this.canary?.start();
    this.console.start();
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
    // Readiness turns false at once: load balancers stop sending while we drain.
    this.state = 'closing';
    const started = Date.now();
    this.admission.stopAccepting();
    const closed = new Map<http.Server, Promise<void>>();
    for (const { server, type } of this.httpServers) {
      if (type === 'client') closed.set(server, stopListening(server));
    }
    await Promise.all([
      this.clientServer.closeAll(CloseCode.GOING_AWAY, 'server shutting down', drainMs),
      this.socketio?.close(drainMs),
    ]);
    // Upgraded sockets are no longer the HTTP server's to cut: cut the ones that ignore the close.
    const cutSockets = setTimeout(() => this.clientServer.terminateAll(), SERVER_CLOSE_GRACE_MS);
    cutSockets.unref();
    // The admin servers kept answering (health checks, late publishes) during the drain; now
    // they stop accepting and the publishes in flight finish before their collaborators close.
    for (const { server, type } of this.httpServers) {
      if (type === 'admin') closed.set(server, stopListening(server));
    }
    await Promise.all([...closed].map(([server, done]) => finishConnections(server, done, SERVER_CLOSE_GRACE_MS)));
    clearTimeout(cutSockets);
    // Before the bus and Redis: it takes this gateway out of the console's directory.
    await this.console.close();
    await this.canary?.close();
    await this.options.relay?.close();
    await this.options.bus?.close();
    await this.node.history.close();
    this.state = 'closed';
    this.logger.info({ ms: Date.now() - started }, 'gateway closed');
  }
}
