/**
 * The operators' console on the admin port: the page (console-page.ts), its API
 * (console-api.ts), the sampler behind its charts, and, with Redis, this gateway's
 * announcements in the cluster's gateway directory, so any gateway can show every gateway.
 *
 * Lifecycle: start() once the servers listen (sampling every 5 s, announcing every 2 s);
 * close() stops both and takes this gateway out of the directory, before the bus closes.
 */
import type express from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConsoleOverview, ConsoleServerAddress, GatewaySnapshot, Logger, TidingsConfig } from '@tidings/protocol';
import type { Bus } from '@tidings/bus';
import type { Relay } from '@tidings/relay';
import type { TidingsNode } from '../node';
import type { BusCanary } from '../canary';
import type { Readiness } from '../admin/health';
import { createRedisConnection, redisModeOf, watchRedisErrors, type RedisConnection } from '../redis-connections';
import { ConsolePage, findPageDir } from './console-page';
import { consoleApiRoutes } from './console-api';
import { ConsoleSampler } from './console-sampler';
import { createConsoleKeys } from './console-keys';
import { GatewayDirectory } from './gateway-directory';
import { takeSnapshot, type ConnectionsByTransport } from './gateway-snapshot';

/** Time between two announcements. */
export const ANNOUNCE_INTERVAL_MS = 2_000;
/** How long an announcement counts: three missed announcements and the gateway is gone. */
export const ANNOUNCE_TTL_MS = 3 * ANNOUNCE_INTERVAL_MS + 1_000;

export interface ConsoleServiceOptions {
  config: TidingsConfig;
  logger: Logger;
  node: TidingsNode;
  version: string;
  readiness: () => Readiness;
  connections: ConnectionsByTransport;
  /** The servers listening now (empty before start). */
  servers: () => { type: 'client' | 'admin'; address: { address: string; port: number }; tls: boolean }[];
  bus?: Bus;
  canary?: BusCanary;
  relay?: Relay;
  /** The built page; default: found beside the compiled gateway (findPageDir). */
  pageDir?: string | null;
  /** Redis for the directory; default: a connection of its own when `redis.*` is configured; null: none. */
  redis?: RedisConnection | null;
  /** Sampling step, ms (tests); default 5000. */
  sampleStepMs?: number;
  /** Announcement interval, ms (tests); default ANNOUNCE_INTERVAL_MS. */
  announceIntervalMs?: number;
}

export class ConsoleService {
  readonly page: ConsolePage;
  readonly sampler: ConsoleSampler;
  /** The cluster's gateways in Redis; absent without Redis. */
  readonly directory?: GatewayDirectory;
  private readonly redis?: RedisConnection;
  private readonly ownsRedis: boolean;
  private readonly logger: Logger;
  private readonly announceIntervalMs: number;
  private timer?: NodeJS.Timeout;
  private started = false;
  private announcing: Promise<void> | null = null;
  private announceFailing = false;
  private closing?: Promise<void>;

  constructor(private readonly options: ConsoleServiceOptions) {
    const { config, node } = options;
    this.logger = options.logger;
    this.page = new ConsolePage(options.pageDir === undefined ? findPageDir() : options.pageDir, { authRequired: config.auth.adminTokens.length > 0 });
    if (!this.page.isBuilt) this.logger.warn({}, 'console: the page was not built; /console/ answers 404 (the API still works)');
    this.sampler = new ConsoleSampler({ counters: node.counters, stepMs: options.sampleStepMs });
    this.announceIntervalMs = options.announceIntervalMs ?? ANNOUNCE_INTERVAL_MS;
    let redis = options.redis ?? undefined;
    this.ownsRedis = false;
    if (options.redis === undefined && redisModeOf(config.redis)) {
      redis = createRedisConnection(config.redis, { name: 'tidings-console', failFast: true, lazyConnect: true });
      watchRedisErrors(redis, this.logger, 'console');
      this.ownsRedis = true;
    }
    if (redis) {
      this.redis = redis;
      const ttlMs = Math.max(ANNOUNCE_TTL_MS, 3 * this.announceIntervalMs + 1_000);
      this.directory = new GatewayDirectory({ client: redis, keys: createConsoleKeys(config.redis.keyPrefix), ttlMs, logger: this.logger });
    }
  }

  /** This gateway's figures now. */
  snapshot(): GatewaySnapshot {
    const o = this.options;
    return takeSnapshot({
      node: o.node,
      version: o.version,
      sampler: this.sampler,
      readiness: o.readiness,
      connections: o.connections,
      servers: () =>
        o.servers().map((s): ConsoleServerAddress => ({ type: s.type, listen: s.address.address, port: s.address.port, tls: s.tls })),
      bus: o.bus,
      canary: o.canary,
      relay: o.relay,
    });
  }

  async overview(): Promise<ConsoleOverview> {
    const { config, relay } = this.options;
    const self = this.snapshot();
    const gateways = [self];
    let clusterError: string | null = null;
    if (this.directory) {
      try {
        for (const other of await this.directory.list()) if (other.fingerprint !== self.fingerprint) gateways.push(other);
      } catch (err) {
        clusterError = `the gateway directory in Redis could not be read (${(err as Error).message}); showing this gateway only`;
      }
    }
    const { clientTokens } = config.auth;
    return {
      self: self.fingerprint,
      cluster: this.directory ? 'redis' : relay ? 'relay' : 'none',
      clusterError,
      gateways,
      tail: {
        clientTokens: clientTokens.mode,
        canMintTokens: clientTokens.mode === 'required' && clientTokens.hmacSecret !== '',
        socketioPath: config.socketio.enabled ? config.socketio.path : null,
      },
    };
  }

  /** Serves the page's files (before the admin gate); false for anything else. */
  readonly servePage = (req: IncomingMessage, res: ServerResponse): boolean => this.page.handle(req, res);

  /** Mounts the API on the admin app (behind the admin gate). */
  routes(): (app: express.Express) => void {
    const { node, config } = this.options;
    return consoleApiRoutes({ overview: () => this.overview(), clientTokens: config.auth.clientTokens, counters: node.counters, logger: this.logger });
  }

  start(): void {
    if (this.closing) return;
    if (this.started) return;
    this.started = true;
    this.sampler.start();
    if (!this.directory) return;
    if (this.ownsRedis && this.redis?.status === 'wait') {
      // Connected here, not by the first command: the offline queue is off (fail fast).
      this.redis.connect().then(
        () => this.scheduleAnnounce(0),
        () => this.scheduleAnnounce(this.announceIntervalMs),
      );
    } else this.scheduleAnnounce(0);
  }

  private scheduleAnnounce(delayMs: number): void {
    if (this.closing) return;
    this.timer = setTimeout(() => {
      this.announcing = this.announce().finally(() => {
        this.announcing = null;
        if (!this.closing) this.scheduleAnnounce(this.announceIntervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  /** Writes this gateway's snapshot to the directory; a failure is logged once per outage. */
  private async announce(): Promise<void> {
    try {
      await this.directory!.announce(this.snapshot());
      if (this.announceFailing) this.logger.info({}, 'console: announcing this gateway in Redis again');
      this.announceFailing = false;
    } catch (err) {
      if (!this.announceFailing) this.logger.warn({ err: (err as Error).message }, 'console: cannot announce this gateway in Redis; retrying');
      this.announceFailing = true;
    }
  }

  /** Stops sampling and announcing, and takes this gateway out of the directory. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    clearTimeout(this.timer);
    this.sampler.close();
    await this.announcing;
    if (this.directory) {
      await this.directory.remove(this.options.node.fingerprint).catch((err: Error) => {
        this.logger.debug({ err: err.message }, 'console: could not remove this gateway from the directory (it expires by itself)');
      });
    }
    if (this.redis && this.ownsRedis) {
      const redis = this.redis;
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    }
  }
}
