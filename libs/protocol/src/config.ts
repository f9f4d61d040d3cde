/**
 * The configuration file: an unchanged Aphlict `aphlict.json` (servers, logs, cluster,
 * pidfile, memory.hint) plus Tidings' own sections beside those keys. Pure: the gateway
 * reads the file and the environment and hands both in here.
 *
 * Every Tidings setting can also be set by an environment variable named
 * TIDINGS_<SECTION>_<KEY> in upper snake case (`history.maxMessages` is
 * TIDINGS_HISTORY_MAX_MESSAGES); see ENV_SETTINGS for the full list.
 */
import { z } from 'zod';
import { isCidr } from './cidr';

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();

const serverSchema = z
  .object({
    type: z.enum(['client', 'admin']),
    port,
    listen: z.string().min(1).nullish(),
    'ssl.key': z.string().min(1).nullish(),
    'ssl.cert': z.string().min(1).nullish(),
    'ssl.chain': z.string().min(1).nullish(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (!!s['ssl.key'] !== !!s['ssl.cert']) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [s['ssl.key'] ? 'ssl.cert' : 'ssl.key'], message: 'ssl.key and ssl.cert must be given together' });
    }
    if (s['ssl.chain'] && !s['ssl.key']) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['ssl.chain'], message: 'ssl.chain needs ssl.key and ssl.cert' });
    }
  });

const peerSchema = z
  .object({
    host: z.string().min(1),
    port,
    protocol: z.enum(['http', 'https']).default('http'),
    /**
     * Path prefix of the peer's admin URL, as Phorge's `notification.servers` entries carry it
     * (`/TOKEN`). Sent as is in the request line, as Phorge sends it: visible ASCII only.
     */
    path: z
      .string()
      .regex(/^\/[\x21-\x22\x24-\x3e\x40-\x7e]*$/, 'must start with / and hold only visible ASCII characters, without spaces, ? or #')
      .optional(),
  })
  .strict();

/** A list of addresses or CIDR ranges (`auth.adminAllow`, `limits.trustProxy`). */
const cidrList = z.array(
  z.string().superRefine((text, ctx) => {
    if (!isCidr(text)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `"${text}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8)` });
  }),
);

/**
 * Characters an admin token may hold: those that travel unchanged in a URL path segment
 * (RFC 3986 pchar without %-escapes), since Phorge sends the token as the first one.
 */
const ADMIN_TOKEN_CHARS = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/;
/** Admin tokens travel in URLs and logs of proxies: too short a token is too easy to guess. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;
/** RFC 7518 section 3.2: an HS256 key must be at least as long as the hash, 256 bits. */
export const MIN_HMAC_SECRET_LENGTH = 32;

// The messages never repeat the token: config errors are printed and logged.
const adminToken = z
  .string()
  .min(MIN_ADMIN_TOKEN_LENGTH, `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (tokens travel in URLs)`)
  .regex(ADMIN_TOKEN_CHARS, "may hold only A-Z a-z 0-9 and -._~!$&'()*+,;=:@ (no spaces or /: it travels as a URL path segment)");

/** `HOST:PORT`, the host an IPv6 address in brackets (`[::1]:26379`). */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/,]+):(\d{1,5})$/;

/** Splits `HOST:PORT`; null when it is not one or the port is out of range. */
export function parseHostPort(text: string): { host: string; port: number } | null {
  const match = HOST_PORT.exec(text);
  if (!match) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

/** A list of `HOST:PORT` (redis.sentinels): a JSON array, or one comma-separated string as redis.clusterNodes. */
const hostPortList = z
  .union([z.array(z.string()), z.string().transform((s) => s.split(','))])
  .transform((list) => list.map((s) => s.trim()).filter((s) => s !== ''))
  .superRefine((list, ctx) => {
    list.forEach((text, i) => {
      if (!parseHostPort(text)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i], message: `"${text}" is not HOST:PORT` });
    });
  });

export type ClientTokenMode = 'off' | 'required';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** Defaults of Tidings' own sections; also the source of their env variable names. */
export const TIDINGS_DEFAULTS = {
  history: {
    /** Messages kept per instance (Aphlict: 4096). */
    maxMessages: 4096,
    /** Milliseconds a message stays replayable (Aphlict: 60000). */
    maxAgeMs: 60_000,
  },
  limits: {
    /**
     * Largest admin request body; larger ones get 413 without being read whole. Below
     * maxBufferedBytes, so that the largest message can be delivered to a socket at all.
     */
    maxBodyBytes: 524_288,
    /**
     * Largest client frame; larger ones close the socket with 1009. Admits one `subscribe`
     * of maxSubscriptionsPerSocket Phorge PHIDs (30 characters each: about 330 KB).
     */
    maxFrameBytes: 524_288,
    /** Subscriptions one socket may hold; PHIDs past it are ignored and logged. */
    maxSubscriptionsPerSocket: 10_000,
    /** Unsent bytes a socket may hold before it is closed as a slow reader. */
    maxBufferedBytes: 1_048_576,
    /**
     * Subscriptions one node holds over all its sockets (raw and Socket.IO); PHIDs past it
     * are refused as past the per-socket cap. About 100 bytes each on raw sockets and 300 on
     * Socket.IO (bench/subscriptions.mjs): sized for a small server.
     */
    maxSubscriptionsPerNode: 1_000_000,
    /** Client connections one node accepts at once (0: no limit). */
    maxConnections: 0,
    /**
     * Instances (tenants) one node holds state for at once: sockets, or history without
     * Redis. A socket or a publish that would open one more is refused with 503.
     */
    maxInstances: 10_000,
    /** Client connections one source address may hold on a node (0: no limit); past it upgrades get 429. */
    maxConnectionsPerIp: 0,
    /** Proxies (addresses or CIDR ranges) whose X-Forwarded-For is believed; empty: none. */
    trustProxy: [] as string[],
    /** Publishes a second per admin token or source address (0: no limit); past it 429 with Retry-After. */
    maxPublishesPerSecond: 0,
  },
  redis: {
    /** redis://HOST:PORT/DB; empty: no Redis (the embedded single-node default). */
    url: '',
    /** Comma-separated HOST:PORT seed nodes of a Redis Cluster; used instead of url. */
    clusterNodes: '',
    /**
     * HOST:PORT of Redis Sentinels (a list; comma-separated in the env): every connection
     * asks them for the master of sentinelName and follows it through failovers. Used
     * instead of url and clusterNodes.
     */
    sentinels: [] as string[],
    /** The master group the sentinels monitor (`sentinel monitor NAME ...`). */
    sentinelName: 'mymaster',
    /** Password of the master and replicas the sentinels name (their requirepass); empty: none. Never logged. */
    password: '',
    /** Password of the sentinels themselves (their requirepass); empty: none. Never logged. */
    sentinelPassword: '',
    /** Prefix of every key and channel, so several clusters can share one Redis. */
    keyPrefix: 'tidings:',
    /** Socket.IO's sharded adapter (SPUBLISH, Redis 7) instead of the classic one. */
    sharded: false,
    /**
     * How messages travel between gateways: `broadcast` (one channel, every gateway gets
     * every message) or `interest` (each gateway gets only messages with a recipient among
     * its sockets; see libs/bus/src/redis-interest-bus.ts).
     */
    bus: 'broadcast' as 'broadcast' | 'interest',
    /**
     * Interest routing: how long a gateway that stopped refreshing its lease (it died) is
     * still published to. It refreshes every third of it.
     */
    routingLeaseMs: 15_000,
    /** How long a publish waits for Redis before answering 503. */
    commandTimeoutMs: 2_000,
    /**
     * Replicas that must hold a message before its publish is acknowledged (Redis WAIT,
     * within commandTimeoutMs); fewer in time answer 503. 0: acknowledged once the master
     * stored it (a failover can lose what the replicas had not received yet).
     */
    waitReplicas: 0,
  },
  relay: {
    /** Messages queued per peer while it is slow or down; older ones are dropped and counted. */
    queueSize: 1_000,
    /** Timeout of one relay request. */
    timeoutMs: 2_000,
    /** First retry delay after a failed relay; doubles up to retryMaxMs. */
    retryMinMs: 250,
    retryMaxMs: 30_000,
    /**
     * Relay messages that came from a peer on to the other peers, as Aphlict does. Turn it
     * off in a full mesh (every node lists every node) to save (n-1)^2 requests a message.
     */
    forward: true,
  },
  socketio: {
    /** Serve Socket.IO on the client port beside raw Aphlict sockets. */
    enabled: true,
    /** Socket.IO's path on the client port. */
    path: '/socket.io/',
  },
  shutdown: {
    /** Client sockets are closed with 1001 spread over this window on SIGTERM/SIGINT. */
    drainMs: 10_000,
  },
  health: {
    /** How often a node publishes a canary through its bus. */
    canaryIntervalMs: 2_000,
    /** Not ready when no canary came back within this long. */
    canaryMaxAgeMs: 10_000,
  },
  log: {
    /** pino level: trace, debug, info, warn, error, fatal. */
    level: 'info' as LogLevel,
  },
  auth: {
    /**
     * Tokens of the admin port (several allow rotation); empty: no authentication, as
     * Aphlict. Given as `Authorization: Bearer TOKEN` or as the first path segment (`/TOKEN/`).
     */
    adminTokens: [] as string[],
    /** Source addresses or CIDR ranges that may use the admin port without a token (Aphlict peers). */
    adminAllow: [] as string[],
    /** Signed connection tokens on the client port. */
    clientTokens: {
      /** `off`: anyone may subscribe to anything (Aphlict); `required`: a valid token is needed. */
      mode: 'off' as ClientTokenMode,
      /** HS256 secret (at least 32 characters); empty: none. */
      hmacSecret: '',
      /** PEM file of the public key for RS256, ES256 (P-256) or EdDSA (Ed25519); empty: none. */
      publicKeyFile: '',
      /** Required `iss` claim; empty: not checked. */
      issuer: '',
      /** Required `aud` claim; empty: not checked. */
      audience: '',
    },
  },
};

type Defaults = typeof TIDINGS_DEFAULTS;

function section<K extends keyof Defaults>(name: K, shape: z.ZodRawShape) {
  // A clone, so a config's lists and nested sections are never the defaults' own objects.
  return z.object(shape).strict().default({}).transform((v) => ({ ...structuredClone(TIDINGS_DEFAULTS[name]), ...v }) as Defaults[K]);
}

const clientTokensSchema = z
  .object({
    mode: z.enum(['off', 'required']).optional(),
    hmacSecret: z
      .string()
      .refine((s) => s === '' || s.length >= MIN_HMAC_SECRET_LENGTH, `must be at least ${MIN_HMAC_SECRET_LENGTH} characters (256 bits for HS256)`)
      .optional(),
    publicKeyFile: z.string().optional(),
    issuer: z.string().optional(),
    audience: z.string().optional(),
  })
  .strict()
  .default({})
  .transform((v) => ({ ...TIDINGS_DEFAULTS.auth.clientTokens, ...v }));

export const configSchema = z
  .object({
    // Aphlict's keys.
    servers: z.array(serverSchema).default([]),
    logs: z.array(z.object({ path: z.string().min(1) }).strict()).default([]),
    cluster: z.array(peerSchema).default([]),
    pidfile: z.string().min(1).nullish(),
    'memory.hint': z.number().int().nullish(),
    // Tidings' own keys.
    history: section('history', { maxMessages: positiveInt.optional(), maxAgeMs: positiveInt.optional() }),
    limits: section('limits', {
      maxBodyBytes: positiveInt.optional(),
      maxFrameBytes: positiveInt.optional(),
      maxSubscriptionsPerSocket: positiveInt.optional(),
      maxBufferedBytes: positiveInt.optional(),
      maxConnections: z.number().int().min(0).optional(),
      maxSubscriptionsPerNode: positiveInt.optional(),
      maxInstances: positiveInt.optional(),
      maxConnectionsPerIp: z.number().int().min(0).optional(),
      trustProxy: cidrList.optional(),
      maxPublishesPerSecond: z.number().int().min(0).optional(),
    }),
    redis: section('redis', {
      url: z.string().refine((u) => u === '' || /^rediss?:\/\//.test(u), 'must start with redis:// or rediss://').optional(),
      clusterNodes: z.string().optional(),
      sentinels: hostPortList.optional(),
      sentinelName: z.string().min(1).optional(),
      password: z.string().optional(),
      sentinelPassword: z.string().optional(),
      keyPrefix: z.string().optional(),
      sharded: z.boolean().optional(),
      bus: z.enum(['broadcast', 'interest']).optional(),
      routingLeaseMs: z.number().int().min(300).optional(),
      commandTimeoutMs: positiveInt.optional(),
      waitReplicas: z.number().int().min(0).optional(),
    }),
    relay: section('relay', {
      queueSize: positiveInt.optional(),
      timeoutMs: positiveInt.optional(),
      retryMinMs: positiveInt.optional(),
      retryMaxMs: positiveInt.optional(),
      forward: z.boolean().optional(),
    }),
    socketio: section('socketio', {
      enabled: z.boolean().optional(),
      path: z.string().regex(/^\/.*\/$/, 'must start and end with /').optional(),
    }),
    shutdown: section('shutdown', { drainMs: z.number().int().min(0).optional() }),
    health: section('health', { canaryIntervalMs: positiveInt.optional(), canaryMaxAgeMs: positiveInt.optional() }),
    log: section('log', { level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).optional() }),
    auth: section('auth', { adminTokens: z.array(adminToken).optional(), adminAllow: cidrList.optional(), clientTokens: clientTokensSchema }),
  })
  .strict();

export type TidingsConfig = z.output<typeof configSchema>;
export type ServerConfig = TidingsConfig['servers'][number];
export type PeerConfig = TidingsConfig['cluster'][number];

/** Aphlict's defaults when no config file is given. */
export const DEFAULT_SERVERS: ServerConfig[] = [
  { type: 'client', port: 22280, listen: '0.0.0.0' },
  { type: 'admin', port: 22281, listen: '127.0.0.1' },
];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * `history.maxMessages` -> TIDINGS_HISTORY_MAX_MESSAGES; a nested key is dotted:
 * (`auth`, `clientTokens.mode`) -> TIDINGS_AUTH_CLIENT_TOKENS_MODE.
 */
export function envName(sectionName: string, key: string): string {
  return `TIDINGS_${sectionName}_${key.replace(/([A-Z])/g, '_$1').replace(/\./g, '_')}`.toUpperCase();
}

/** A nested group of settings (auth.clientTokens), as opposed to a value or a list. */
function isGroup(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The settings under `prefix`: [path, default] for every leaf, nested groups walked. */
function leaves(prefix: string[], values: Record<string, unknown>): [string[], unknown][] {
  return Object.entries(values).flatMap(([key, value]) => (isGroup(value) ? leaves([...prefix, key], value) : [[[...prefix, key], value]]));
}

/** Every env variable Tidings reads, with the setting it sets (section first: `['auth', 'clientTokens', 'mode']`). */
export const ENV_SETTINGS: { env: string; path: string[] }[] = leaves([], TIDINGS_DEFAULTS).map(([path]) => ({
  env: envName(path[0], path.slice(1).join('.')),
  path,
}));

/** The default of a setting, by its path in TIDINGS_DEFAULTS. */
export function defaultOf(path: readonly string[]): unknown {
  return path.reduce<unknown>((node, key) => (isGroup(node) ? node[key] : undefined), TIDINGS_DEFAULTS);
}

/** Server overrides by environment, for containers: TIDINGS_CLIENT_PORT, TIDINGS_ADMIN_LISTEN, ... */
const SERVER_ENV = ['CLIENT', 'ADMIN'] as const;

function coerce(raw: string, sample: unknown, env: string): unknown {
  // Lists are comma-separated; blanks around and between entries are dropped.
  if (Array.isArray(sample)) return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (typeof sample === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${env}: "${raw}" is not a number`);
    return n;
  }
  if (typeof sample === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${env}: "${raw}" is not a boolean`);
  }
  return raw;
}

function describeIssue(issue: z.ZodIssue): string {
  const key = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    const where = key ? `${key}: ` : '';
    return `${where}unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  return `${key || '(top level)'}: ${issue.message}`;
}

/**
 * Validates a parsed config file (or `undefined` for none) merged with the environment.
 * Throws ConfigError naming each bad key.
 */
export function resolveConfig(file: unknown, env: Record<string, string | undefined> = {}): TidingsConfig {
  if (file !== undefined && (file === null || typeof file !== 'object' || Array.isArray(file))) {
    throw new ConfigError('the config file must hold a JSON object');
  }
  const raw: Record<string, unknown> = structuredClone((file as Record<string, unknown>) ?? {});
  for (const { env: name, path } of ENV_SETTINGS) {
    const value = env[name];
    if (value === undefined) continue;
    let target = raw;
    for (const key of path.slice(0, -1)) {
      const current = target[key];
      target = target[key] = isGroup(current) ? current : {};
    }
    target[path[path.length - 1]] = coerce(value, defaultOf(path), name);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map(describeIssue).join('; '));
  }
  const config = parsed.data;
  if (file === undefined || !('servers' in (file as object))) config.servers = DEFAULT_SERVERS.map((s) => ({ ...s }));
  for (const kind of SERVER_ENV) {
    const type = kind.toLowerCase() as 'client' | 'admin';
    const envPort = env[`TIDINGS_${kind}_PORT`];
    const envListen = env[`TIDINGS_${kind}_LISTEN`];
    if (envPort === undefined && envListen === undefined) continue;
    const servers = config.servers.filter((s) => s.type === type);
    if (!servers.length) throw new ConfigError(`TIDINGS_${kind}_*: the config has no ${type} server to override`);
    for (const s of servers) {
      if (envPort !== undefined) {
        const p = coerce(envPort, 0, `TIDINGS_${kind}_PORT`) as number;
        if (!Number.isInteger(p) || p < 0 || p > 65535) throw new ConfigError(`TIDINGS_${kind}_PORT: "${envPort}" is not a port`);
        s.port = p;
      }
      if (envListen !== undefined) s.listen = envListen;
    }
  }
  for (const s of config.servers) s.listen = s.listen || '0.0.0.0';
  if (!config.servers.some((s) => s.type === 'client')) throw new ConfigError('servers: at least one server of type "client" is needed');
  if (!config.servers.some((s) => s.type === 'admin')) throw new ConfigError('servers: at least one server of type "admin" is needed');
  if (config.relay.retryMinMs > config.relay.retryMaxMs) throw new ConfigError('relay.retryMinMs must not exceed relay.retryMaxMs');
  if (config.health.canaryMaxAgeMs < config.health.canaryIntervalMs) {
    const { canaryMaxAgeMs, canaryIntervalMs } = config.health;
    throw new ConfigError(`health.canaryMaxAgeMs (${canaryMaxAgeMs}) must be at least health.canaryIntervalMs (${canaryIntervalMs})`);
  }
  checkRedis(config.redis);
  checkLimitsAgree(config.limits);
  checkAuth(config);
  return config;
}

/** Characters of a Phorge PHID (`PHID-USER-` and 20 more): what limits are sized for. */
export const PHORGE_PHID_LENGTH = 30;

/**
 * The frame a `subscribe` of `count` Phorge PHIDs takes: `{"command":"subscribe","data":[...]}`
 * with each PHID quoted and comma-separated.
 */
export function subscribeFrameBytes(count: number, phidLength = PHORGE_PHID_LENGTH): number {
  return '{"command":"subscribe","data":[]}'.length + count * (phidLength + 3) - (count > 0 ? 1 : 0);
}

/** Room a delivered frame needs beyond the published body (`touched` grows by a fingerprint per node). */
const DELIVERY_OVERHEAD_BYTES = 1_024;

/**
 * Limits that contradict each other are refused (so `--test=true` catches them): a socket
 * must be able to subscribe to its whole allowance in one frame, and the largest message
 * accepted for publishing must fit a socket's outgoing bound, or it could never be delivered.
 */
function checkLimitsAgree(limits: TidingsConfig['limits']): void {
  const { maxFrameBytes, maxSubscriptionsPerSocket, maxSubscriptionsPerNode, maxBodyBytes, maxBufferedBytes } = limits;
  if (maxSubscriptionsPerNode < maxSubscriptionsPerSocket) {
    throw new ConfigError(
      `limits.maxSubscriptionsPerNode (${maxSubscriptionsPerNode}) must be at least limits.maxSubscriptionsPerSocket (${maxSubscriptionsPerSocket})`,
    );
  }
  const needed = subscribeFrameBytes(maxSubscriptionsPerSocket);
  if (maxFrameBytes < needed) {
    throw new ConfigError(
      `limits.maxFrameBytes (${maxFrameBytes}) is too small for one subscribe of limits.maxSubscriptionsPerSocket (${maxSubscriptionsPerSocket}) PHIDs of ${PHORGE_PHID_LENGTH} characters (${needed} bytes): raise it or lower the subscription cap`,
    );
  }
  if (maxBufferedBytes < maxBodyBytes + DELIVERY_OVERHEAD_BYTES) {
    throw new ConfigError(
      `limits.maxBufferedBytes (${maxBufferedBytes}) must exceed limits.maxBodyBytes (${maxBodyBytes}) by at least ${DELIVERY_OVERHEAD_BYTES} bytes, or the largest message accepted could never be delivered`,
    );
  }
}

/**
 * One way to reach Redis at most, and settings that only mean something with one. The
 * messages name keys, never a password's value.
 */
function checkRedis(redis: TidingsConfig['redis']): void {
  const given = (['url', 'clusterNodes', 'sentinels'] as const).filter((key) => redis[key].length > 0).map((key) => `redis.${key}`);
  if (given.length > 1) throw new ConfigError(`${given.join(' and ')} are exclusive: give one`);
  if (redis.waitReplicas > 0 && given.length === 0) {
    throw new ConfigError('redis.waitReplicas needs a Redis: redis.url, redis.clusterNodes or redis.sentinels');
  }
  for (const key of ['password', 'sentinelPassword'] as const) {
    if (redis[key] !== '' && redis.sentinels.length === 0) {
      throw new ConfigError(`redis.${key} is for redis.sentinels (with redis.url, give the password in the URL)`);
    }
  }
}

/** Auth settings that contradict each other; each message names the keys. */
function checkAuth(config: TidingsConfig): void {
  const { adminTokens, adminAllow, clientTokens } = config.auth;
  if (adminAllow.length > 0 && adminTokens.length === 0) {
    throw new ConfigError('auth.adminAllow needs auth.adminTokens: without tokens every address may use the admin port already');
  }
  if (clientTokens.mode === 'required' && !clientTokens.hmacSecret && !clientTokens.publicKeyFile) {
    throw new ConfigError('auth.clientTokens.mode "required" needs auth.clientTokens.hmacSecret or auth.clientTokens.publicKeyFile');
  }
}
