import { ConfigError, DEFAULT_SERVERS, ENV_SETTINGS, TIDINGS_DEFAULTS, envName, resolveConfig, subscribeFrameBytes } from './config';

/** Phorge's conf/aphlict/aphlict.default.json, unchanged (nulls included). */
const PHORGE_DEFAULT = {
  servers: [
    { type: 'client', port: 22280, listen: '0.0.0.0', 'ssl.key': null, 'ssl.cert': null, 'ssl.chain': null },
    { type: 'admin', port: 22281, listen: '127.0.0.1', 'ssl.key': null, 'ssl.cert': null, 'ssl.chain': null },
  ],
  logs: [{ path: '/var/log/aphlict.log' }],
  pidfile: '/var/tmp/aphlict/pid/aphlict.pid',
};

const MINIMAL = {
  servers: [
    { type: 'client', port: 0, listen: '127.0.0.1' },
    { type: 'admin', port: 0, listen: '127.0.0.1' },
  ],
};

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveConfig', () => {
  it("runs Aphlict's defaults with no config at all: client 0.0.0.0:22280, admin 127.0.0.1:22281", () => {
    const config = resolveConfig(undefined);
    expect(config.servers).toEqual([
      { type: 'client', port: 22280, listen: '0.0.0.0' },
      { type: 'admin', port: 22281, listen: '127.0.0.1' },
    ]);
    expect(config.logs).toEqual([]);
    expect(config.cluster).toEqual([]);
    expect(config.history).toEqual({ maxMessages: 4096, maxAgeMs: 60_000 });
    expect(config.limits).toEqual({
      maxBodyBytes: 524_288,
      maxFrameBytes: 524_288,
      maxSubscriptionsPerSocket: 10_000,
      maxSubscriptionsPerNode: 1_000_000,
      maxBufferedBytes: 1_048_576,
      maxConnections: 0,
      maxInstances: 10_000,
      maxConnectionsPerIp: 0,
      trustProxy: [],
      maxPublishesPerSecond: 0,
    });
    expect(config.auth).toEqual({
      adminTokens: [],
      adminAllow: [],
      clientTokens: { mode: 'off', hmacSecret: '', publicKeyFile: '', issuer: '', audience: '' },
    });
    expect(config.redis.url).toBe('');
    expect(config.shutdown.drainMs).toBe(10_000);
    expect(config.log.level).toBe('info');
  });

  it('does not share the default server objects between calls', () => {
    const a = resolveConfig(undefined);
    a.servers[0].port = 1;
    expect(resolveConfig(undefined).servers[0].port).toBe(22280);
    expect(DEFAULT_SERVERS[0].port).toBe(22280);
  });

  it("accepts Phorge's aphlict.default.json unchanged, nulls included", () => {
    const config = resolveConfig(structuredClone(PHORGE_DEFAULT));
    expect(config.servers.map((s) => [s.type, s.port, s.listen, !!s['ssl.key']])).toEqual([
      ['client', 22280, '0.0.0.0', false],
      ['admin', 22281, '127.0.0.1', false],
    ]);
    expect(config.logs).toEqual([{ path: '/var/log/aphlict.log' }]);
    expect(config.pidfile).toBe('/var/tmp/aphlict/pid/aphlict.pid');
    expect(config.history).toEqual(TIDINGS_DEFAULTS.history);
  });

  it('accepts a cluster list and memory.hint as Aphlict configs carry them', () => {
    const config = resolveConfig({
      ...MINIMAL,
      cluster: [{ host: 'peer1', port: 22281, protocol: 'http' }, { host: 'peer2', port: 22281 }],
      'memory.hint': 512,
    });
    expect(config.cluster).toEqual([
      { host: 'peer1', port: 22281, protocol: 'http' },
      { host: 'peer2', port: 22281, protocol: 'http' },
    ]);
  });

  it('defaults listen to 0.0.0.0 as Aphlict does', () => {
    const config = resolveConfig({ servers: [{ type: 'client', port: 1 }, { type: 'admin', port: 2, listen: null }] });
    expect(config.servers.map((s) => s.listen)).toEqual(['0.0.0.0', '0.0.0.0']);
  });

  it("takes Tidings' own keys beside Aphlict's and keeps defaults for the rest of a section", () => {
    const config = resolveConfig({ ...MINIMAL, history: { maxMessages: 10 }, limits: { maxFrameBytes: 100, maxSubscriptionsPerSocket: 2 } });
    expect(config.history).toEqual({ maxMessages: 10, maxAgeMs: 60_000 });
    expect(config.limits.maxFrameBytes).toBe(100);
    expect(config.limits.maxBodyBytes).toBe(524_288);
  });

  it('admits one subscribe of the whole default subscription cap of Phorge PHIDs in one frame', () => {
    const { limits } = resolveConfig(MINIMAL);
    expect(subscribeFrameBytes(1)).toBe(JSON.stringify({ command: 'subscribe', data: ['x'.repeat(30)] }).length);
    expect(subscribeFrameBytes(limits.maxSubscriptionsPerSocket)).toBeLessThanOrEqual(limits.maxFrameBytes);
    expect(limits.maxBodyBytes + 1_024).toBeLessThanOrEqual(limits.maxBufferedBytes);
  });

  it.each([
    [{ maxFrameBytes: 65_536 }, /limits\.maxFrameBytes \(65536\) is too small for one subscribe of limits\.maxSubscriptionsPerSocket \(10000\)/],
    [{ maxBufferedBytes: 524_288 }, /limits\.maxBufferedBytes \(524288\) must exceed limits\.maxBodyBytes \(524288\)/],
    [{ maxSubscriptionsPerNode: 100 }, /limits\.maxSubscriptionsPerNode \(100\) must be at least limits\.maxSubscriptionsPerSocket \(10000\)/],
  ])('refuses limits that contradict each other, naming both: %j', (limits, message) => {
    expect(() => resolveConfig({ ...MINIMAL, limits })).toThrow(message);
  });

  it('names every env variable TIDINGS_<SECTION>_<KEY>', () => {
    expect(envName('history', 'maxMessages')).toBe('TIDINGS_HISTORY_MAX_MESSAGES');
    const names = ENV_SETTINGS.map((s) => s.env);
    for (const n of [
      'TIDINGS_HISTORY_MAX_MESSAGES',
      'TIDINGS_HISTORY_MAX_AGE_MS',
      'TIDINGS_LIMITS_MAX_BODY_BYTES',
      'TIDINGS_LIMITS_MAX_FRAME_BYTES',
      'TIDINGS_LIMITS_MAX_SUBSCRIPTIONS_PER_SOCKET',
      'TIDINGS_LIMITS_MAX_BUFFERED_BYTES',
      'TIDINGS_REDIS_URL',
      'TIDINGS_SHUTDOWN_DRAIN_MS',
      'TIDINGS_LOG_LEVEL',
      'TIDINGS_SOCKETIO_ENABLED',
    ]) {
      expect(names).toContain(n);
    }
  });

  it('lets the environment override file values and defaults, with numbers and booleans coerced', () => {
    const config = resolveConfig(
      { ...MINIMAL, history: { maxMessages: 10, maxAgeMs: 5_000 } },
      {
        TIDINGS_HISTORY_MAX_MESSAGES: '20',
        TIDINGS_LIMITS_MAX_BUFFERED_BYTES: '4096',
        TIDINGS_LIMITS_MAX_BODY_BYTES: '2048',
        TIDINGS_SOCKETIO_ENABLED: 'false',
        TIDINGS_REDIS_URL: 'redis://127.0.0.1:6400/2',
        TIDINGS_LOG_LEVEL: 'warn',
        UNRELATED: 'x',
      },
    );
    expect(config.history).toEqual({ maxMessages: 20, maxAgeMs: 5_000 });
    expect(config.limits.maxBufferedBytes).toBe(4096);
    expect(config.socketio.enabled).toBe(false);
    expect(config.redis.url).toBe('redis://127.0.0.1:6400/2');
    expect(config.log.level).toBe('warn');
  });

  it('does not change the file object it was given', () => {
    const file = structuredClone(PHORGE_DEFAULT);
    resolveConfig(file, { TIDINGS_HISTORY_MAX_MESSAGES: '5', TIDINGS_CLIENT_PORT: '1' });
    expect(file).toEqual(PHORGE_DEFAULT);
  });

  it('overrides server ports and listen addresses with TIDINGS_CLIENT_PORT, TIDINGS_ADMIN_LISTEN, ...', () => {
    const config = resolveConfig(structuredClone(PHORGE_DEFAULT), {
      TIDINGS_CLIENT_PORT: '8080',
      TIDINGS_CLIENT_LISTEN: '127.0.0.1',
      TIDINGS_ADMIN_PORT: '0',
    });
    expect(config.servers.map((s) => [s.type, s.port, s.listen])).toEqual([
      ['client', 8080, '127.0.0.1'],
      ['admin', 0, '127.0.0.1'],
    ]);
    expect(resolveConfig(undefined, { TIDINGS_CLIENT_PORT: '9000' }).servers[0].port).toBe(9000);
  });

  describe('errors name the bad key', () => {
    it.each([
      ['a server port that is not a number', { servers: [{ type: 'client', port: 'x' }, { type: 'admin', port: 1 }] }, /servers\[0\]\.port/],
      ['a server port out of range', { servers: [{ type: 'client', port: 70000 }, { type: 'admin', port: 1 }] }, /servers\[0\]\.port/],
      ['a bad server type', { servers: [{ type: 'client', port: 1 }, { type: 'other', port: 1 }] }, /servers\[1\]\.type/],
      ['an unknown server key', { servers: [{ type: 'client', port: 1, lsiten: 'x' }, { type: 'admin', port: 1 }] }, /servers\[0\]: unknown key "lsiten"/],
      ['ssl.key without ssl.cert', { servers: [{ type: 'client', port: 1, 'ssl.key': '/k' }, { type: 'admin', port: 1 }] }, /servers\[0\]\.ssl\.cert/],
      ['ssl.chain alone', { servers: [{ type: 'client', port: 1, 'ssl.chain': '/c' }, { type: 'admin', port: 1 }] }, /servers\[0\]\.ssl\.chain/],
      ['a log entry without path', { ...MINIMAL, logs: [{}] }, /logs\[0\]\.path/],
      ['a cluster peer with a bad protocol', { ...MINIMAL, cluster: [{ host: 'h', port: 1, protocol: 'ftp' }] }, /cluster\[0\]\.protocol/],
      ['an unknown top-level key', { ...MINIMAL, histroy: {} }, /unknown key "histroy"/],
      ['an unknown key in a Tidings section', { ...MINIMAL, history: { maxMessage: 3 } }, /history: unknown key "maxMessage"/],
      ['a history bound that is not positive', { ...MINIMAL, history: { maxMessages: 0 } }, /history\.maxMessages/],
      ['a limit that is not an integer', { ...MINIMAL, limits: { maxBodyBytes: 1.5 } }, /limits\.maxBodyBytes/],
      ['a redis url of another scheme', { ...MINIMAL, redis: { url: 'http://x' } }, /redis\.url/],
      ['a socket.io path without slashes', { ...MINIMAL, socketio: { path: 'sio' } }, /socketio\.path/],
      ['a log level that does not exist', { ...MINIMAL, log: { level: 'loud' } }, /log\.level/],
      ['no client server', { servers: [{ type: 'admin', port: 1 }] }, /"client"/],
      ['no admin server', { servers: [{ type: 'client', port: 1 }] }, /"admin"/],
      ['retryMinMs over retryMaxMs', { ...MINIMAL, relay: { retryMinMs: 10, retryMaxMs: 5 } }, /relay\.retryMinMs/],
      ['a canary max age below its interval', { ...MINIMAL, health: { canaryIntervalMs: 5000, canaryMaxAgeMs: 1000 } }, /health\.canaryMaxAgeMs/],
      ['both redis.url and redis.clusterNodes', { ...MINIMAL, redis: { url: 'redis://a', clusterNodes: 'b:1' } }, /redis\.url and redis\.clusterNodes/],
      ['both redis.url and redis.sentinels', { ...MINIMAL, redis: { url: 'redis://a', sentinels: ['b:1'] } }, /redis\.url and redis\.sentinels are exclusive/],
      ['both redis.clusterNodes and redis.sentinels', { ...MINIMAL, redis: { clusterNodes: 'a:1', sentinels: 'b:1' } }, /redis\.clusterNodes and redis\.sentinels/],
      ['a sentinel without a port', { ...MINIMAL, redis: { sentinels: ['a:1', 'b'] } }, /redis\.sentinels\[1\]: "b" is not HOST:PORT/],
      ['a sentinel port out of range', { ...MINIMAL, redis: { sentinels: 'a:1,b:70000' } }, /redis\.sentinels\[1\]/],
      ['an empty sentinel name', { ...MINIMAL, redis: { sentinels: ['a:1'], sentinelName: '' } }, /redis\.sentinelName/],
      ['redis.waitReplicas without Redis', { ...MINIMAL, redis: { waitReplicas: 1 } }, /redis\.waitReplicas needs a Redis/],
      ['a negative redis.waitReplicas', { ...MINIMAL, redis: { url: 'redis://a', waitReplicas: -1 } }, /redis\.waitReplicas/],
      ['redis.password without sentinels', { ...MINIMAL, redis: { url: 'redis://a', password: 'secret-pw' } }, /redis\.password is for redis\.sentinels/],
      ['redis.sentinelPassword without sentinels', { ...MINIMAL, redis: { sentinelPassword: 'secret-pw' } }, /redis\.sentinelPassword is for redis\.sentinels/],
    ])('%s', (_what, file, pattern) => {
      expect(errorOf(() => resolveConfig(file)).message).toMatch(pattern);
    });

    it('a file that is not an object', () => {
      for (const file of [null, 42, 'x', []]) expect(errorOf(() => resolveConfig(file)).message).toMatch(/JSON object/);
    });

    it('names the env variable whose value is not a number or a boolean', () => {
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_HISTORY_MAX_MESSAGES: 'many' })).message).toMatch(
        /TIDINGS_HISTORY_MAX_MESSAGES: "many" is not a number/,
      );
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_HISTORY_MAX_MESSAGES: '' })).message).toMatch(
        /TIDINGS_HISTORY_MAX_MESSAGES/,
      );
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_SOCKETIO_ENABLED: 'maybe' })).message).toMatch(
        /TIDINGS_SOCKETIO_ENABLED: "maybe" is not a boolean/,
      );
    });

    it('names the setting of an env value the schema refuses', () => {
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_HISTORY_MAX_AGE_MS: '-1' })).message).toMatch(/history\.maxAgeMs/);
    });

    it('names TIDINGS_CLIENT_PORT when it is not a port', () => {
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_CLIENT_PORT: '70000' })).message).toMatch(/TIDINGS_CLIENT_PORT/);
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_ADMIN_PORT: 'abc' })).message).toMatch(/TIDINGS_ADMIN_PORT/);
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_CLIENT_PORT: '1.5' })).message).toMatch(/TIDINGS_CLIENT_PORT/);
    });

    it('lists several bad keys at once', () => {
      const message = errorOf(() => resolveConfig({ ...MINIMAL, history: { maxMessages: -1, maxAgeMs: 'x' } })).message;
      expect(message).toMatch(/history\.maxMessages/);
      expect(message).toMatch(/history\.maxAgeMs/);
    });
  });
});

describe('resolveConfig: Redis Sentinel and replica acknowledgements', () => {
  it('defaults: no sentinels, master group mymaster, no passwords, no replica wait', () => {
    const { redis } = resolveConfig(MINIMAL);
    expect(redis).toMatchObject({ sentinels: [], sentinelName: 'mymaster', password: '', sentinelPassword: '', waitReplicas: 0 });
  });

  it('takes sentinels as a list or one comma-separated string (as redis.clusterNodes), IPv6 in brackets', () => {
    const asList = resolveConfig({ ...MINIMAL, redis: { sentinels: ['10.0.0.1:26379', ' [::1]:26380 '], sentinelName: 'tidings' } });
    expect(asList.redis.sentinels).toEqual(['10.0.0.1:26379', '[::1]:26380']);
    expect(asList.redis.sentinelName).toBe('tidings');
    const asString = resolveConfig({ ...MINIMAL, redis: { sentinels: 'a:1, b:2,,', waitReplicas: 2 } });
    expect(asString.redis.sentinels).toEqual(['a:1', 'b:2']);
    expect(asString.redis.waitReplicas).toBe(2);
  });

  it('reads them from the environment, comma-separated, over the file', () => {
    const config = resolveConfig(
      { ...MINIMAL, redis: { sentinels: ['file:1'] } },
      {
        TIDINGS_REDIS_SENTINELS: 's1:26379,s2:26379',
        TIDINGS_REDIS_SENTINEL_NAME: 'group',
        TIDINGS_REDIS_PASSWORD: 'data-pw',
        TIDINGS_REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
        TIDINGS_REDIS_WAIT_REPLICAS: '1',
      },
    );
    expect(config.redis).toMatchObject({
      sentinels: ['s1:26379', 's2:26379'],
      sentinelName: 'group',
      password: 'data-pw',
      sentinelPassword: 'sentinel-pw',
      waitReplicas: 1,
    });
  });

  it('a refused password setting is named, never repeated', () => {
    const message = errorOf(() => resolveConfig({ ...MINIMAL, redis: { url: 'redis://a', password: 'do-not-print-me' } })).message;
    expect(message).toMatch(/redis\.password/);
    expect(message).not.toContain('do-not-print-me');
  });

  it('positive control: each Redis contradiction resolves once one side is left out', () => {
    expect(() => resolveConfig({ ...MINIMAL, redis: { sentinels: ['b:1'] } })).not.toThrow();
    expect(() => resolveConfig({ ...MINIMAL, redis: { url: 'redis://a', waitReplicas: 1 } })).not.toThrow();
    expect(() => resolveConfig({ ...MINIMAL, redis: { clusterNodes: 'a:1', waitReplicas: 1 } })).not.toThrow();
    expect(() => resolveConfig({ ...MINIMAL, redis: { sentinels: 'a:1', password: 'p', sentinelPassword: 'q', waitReplicas: 1 } })).not.toThrow();
  });
});

describe('resolveConfig: auth and per-address limits', () => {
  const TOKEN_A = 'tok-A-0123456789abcdef';
  const TOKEN_B = 'tok-B-0123456789abcdef';
  const SECRET = 's'.repeat(32);

  it('reads auth from the file, keeping the defaults of keys not given', () => {
    const config = resolveConfig({
      ...MINIMAL,
      auth: { adminTokens: [TOKEN_A, TOKEN_B], adminAllow: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'], clientTokens: { mode: 'required', hmacSecret: SECRET } },
      limits: { maxConnectionsPerIp: 20, trustProxy: ['127.0.0.1'], maxPublishesPerSecond: 50 },
      cluster: [{ host: 'peer1', port: 22281, path: `/${TOKEN_A}` }],
    });
    expect(config.auth).toEqual({
      adminTokens: [TOKEN_A, TOKEN_B],
      adminAllow: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'],
      clientTokens: { mode: 'required', hmacSecret: SECRET, publicKeyFile: '', issuer: '', audience: '' },
    });
    expect(config.limits).toMatchObject({ maxConnectionsPerIp: 20, trustProxy: ['127.0.0.1'], maxPublishesPerSecond: 50, maxFrameBytes: 524_288 });
    expect(config.cluster).toEqual([{ host: 'peer1', port: 22281, protocol: 'http', path: `/${TOKEN_A}` }]);
  });

  it('never hands out the defaults own lists or groups, so changing one config cannot change the next', () => {
    const a = resolveConfig(MINIMAL);
    a.auth.adminTokens.push('x');
    a.auth.clientTokens.mode = 'required';
    a.limits.trustProxy.push('10.0.0.1');
    const b = resolveConfig(MINIMAL);
    expect(b.auth.adminTokens).toEqual([]);
    expect(b.auth.clientTokens.mode).toBe('off');
    expect(b.limits.trustProxy).toEqual([]);
    expect(TIDINGS_DEFAULTS.auth.adminTokens).toEqual([]);
  });

  it('names the env variables of nested and list settings', () => {
    expect(envName('auth', 'clientTokens.hmacSecret')).toBe('TIDINGS_AUTH_CLIENT_TOKENS_HMAC_SECRET');
    const byEnv = new Map(ENV_SETTINGS.map((s) => [s.env, s.path.join('.')]));
    expect(Object.fromEntries([...byEnv].filter(([env]) => /^TIDINGS_(AUTH|LIMITS_(MAX_CONNECTIONS_PER_IP|TRUST_PROXY|MAX_PUBLISHES))/.test(env)))).toEqual({
      TIDINGS_AUTH_ADMIN_TOKENS: 'auth.adminTokens',
      TIDINGS_AUTH_ADMIN_ALLOW: 'auth.adminAllow',
      TIDINGS_AUTH_CLIENT_TOKENS_MODE: 'auth.clientTokens.mode',
      TIDINGS_AUTH_CLIENT_TOKENS_HMAC_SECRET: 'auth.clientTokens.hmacSecret',
      TIDINGS_AUTH_CLIENT_TOKENS_PUBLIC_KEY_FILE: 'auth.clientTokens.publicKeyFile',
      TIDINGS_AUTH_CLIENT_TOKENS_ISSUER: 'auth.clientTokens.issuer',
      TIDINGS_AUTH_CLIENT_TOKENS_AUDIENCE: 'auth.clientTokens.audience',
      TIDINGS_LIMITS_MAX_CONNECTIONS_PER_IP: 'limits.maxConnectionsPerIp',
      TIDINGS_LIMITS_TRUST_PROXY: 'limits.trustProxy',
      TIDINGS_LIMITS_MAX_PUBLISHES_PER_SECOND: 'limits.maxPublishesPerSecond',
    });
  });

  it('takes lists from the environment comma-separated, and nested settings, over the file', () => {
    const config = resolveConfig(
      { ...MINIMAL, auth: { adminTokens: ['from-the-file-0123456789'], clientTokens: { issuer: 'file-issuer', audience: 'kept' } } },
      {
        TIDINGS_AUTH_ADMIN_TOKENS: ` ${TOKEN_A} ,${TOKEN_B},`,
        TIDINGS_AUTH_ADMIN_ALLOW: '10.1.0.0/16, ::1',
        TIDINGS_AUTH_CLIENT_TOKENS_MODE: 'required',
        TIDINGS_AUTH_CLIENT_TOKENS_PUBLIC_KEY_FILE: '/etc/tidings/jwt.pem',
        TIDINGS_AUTH_CLIENT_TOKENS_ISSUER: 'phorge',
        TIDINGS_LIMITS_TRUST_PROXY: '127.0.0.1',
        TIDINGS_LIMITS_MAX_CONNECTIONS_PER_IP: '8',
        TIDINGS_LIMITS_MAX_PUBLISHES_PER_SECOND: '100',
      },
    );
    expect(config.auth).toEqual({
      adminTokens: [TOKEN_A, TOKEN_B],
      adminAllow: ['10.1.0.0/16', '::1'],
      clientTokens: { mode: 'required', hmacSecret: '', publicKeyFile: '/etc/tidings/jwt.pem', issuer: 'phorge', audience: 'kept' },
    });
    expect(config.limits).toMatchObject({ trustProxy: ['127.0.0.1'], maxConnectionsPerIp: 8, maxPublishesPerSecond: 100 });
    // An empty variable is an empty list: the way to switch admin tokens off from the environment.
    expect(resolveConfig({ ...MINIMAL, auth: { adminTokens: [TOKEN_A] } }, { TIDINGS_AUTH_ADMIN_TOKENS: '' }).auth.adminTokens).toEqual([]);
  });

  it.each([
    ['10.0.0.1'],
    ['10.0.0.0/8'],
    ['0.0.0.0/0'],
    ['::1'],
    ['fd00::/8'],
    ['::/0'],
    ['::ffff:10.0.0.1'],
    ['::ffff:10.0.0.0/104'],
  ])('accepts the address range %s', (cidr) => {
    expect(resolveConfig({ ...MINIMAL, limits: { trustProxy: [cidr] } }).limits.trustProxy).toEqual([cidr]);
  });

  describe('errors name the keys, and never repeat a token', () => {
    it.each([
      ['an admin token under 16 characters', { auth: { adminTokens: ['short-token'] } }, /auth\.adminTokens\[0\]: must be at least 16 characters/],
      ['an empty admin token', { auth: { adminTokens: [TOKEN_A, ''] } }, /auth\.adminTokens\[1\]: must be at least 16/],
      ['an admin token with a space', { auth: { adminTokens: ['has a space 0123456789'] } }, /auth\.adminTokens\[0\]: may hold only/],
      ['an admin token with a /', { auth: { adminTokens: ['has/a/slash/0123456789'] } }, /auth\.adminTokens\[0\]: may hold only/],
      ['an admin token with a ?', { auth: { adminTokens: ['has?a-query-0123456789'] } }, /auth\.adminTokens\[0\]: may hold only/],
      ['an admin token that is not a string', { auth: { adminTokens: [12345678901234567890] } }, /auth\.adminTokens\[0\]/],
      ['admin tokens that are not a list', { auth: { adminTokens: TOKEN_A } }, /auth\.adminTokens/],
      ['an allow entry that is not an address', { auth: { adminTokens: [TOKEN_A], adminAllow: ['10.0.0.0/33'] } }, /auth\.adminAllow\[0\]: "10\.0\.0\.0\/33" is not an IP address/],
      ['a hostname in trustProxy', { limits: { trustProxy: ['proxy.example'] } }, /limits\.trustProxy\[0\]: "proxy\.example" is not/],
      ['an IPv4 address in hex', { limits: { trustProxy: ['0xa.0.0.1'] } }, /limits\.trustProxy\[0\]/],
      ['an IPv6 zone id', { limits: { trustProxy: ['fe80::1%eth0'] } }, /limits\.trustProxy\[0\]/],
      ['an IPv6 prefix over 128', { limits: { trustProxy: ['fd00::/129'] } }, /limits\.trustProxy\[0\]/],
      ['an unknown client token mode', { auth: { clientTokens: { mode: 'optional' } } }, /auth\.clientTokens\.mode/],
      ['an unknown key under clientTokens', { auth: { clientTokens: { secret: 'x' } } }, /auth\.clientTokens: unknown key "secret"/],
      ['an HMAC secret under 32 characters', { auth: { clientTokens: { hmacSecret: 'x'.repeat(31) } } }, /auth\.clientTokens\.hmacSecret: must be at least 32 characters/],
      ['a negative per-address connection cap', { limits: { maxConnectionsPerIp: -1 } }, /limits\.maxConnectionsPerIp/],
      ['a fractional publish rate', { limits: { maxPublishesPerSecond: 0.5 } }, /limits\.maxPublishesPerSecond/],
      ['a cluster path without a leading /', { cluster: [{ host: 'h', port: 1, path: 'TOKEN' }] }, /cluster\[0\]\.path: must start with \//],
      ['a cluster path with a query', { cluster: [{ host: 'h', port: 1, path: '/TOKEN?x=1' }] }, /cluster\[0\]\.path/],
      ['a cluster path with non-ASCII text', { cluster: [{ host: 'h', port: 1, path: '/tökén' }] }, /cluster\[0\]\.path: .*visible ASCII/],
      [
        'client tokens required without a secret or key file',
        { auth: { clientTokens: { mode: 'required', issuer: 'phorge' } } },
        /auth\.clientTokens\.mode "required" needs auth\.clientTokens\.hmacSecret or auth\.clientTokens\.publicKeyFile/,
      ],
      ['an admin allow-list without admin tokens', { auth: { adminAllow: ['10.0.0.0/8'] } }, /auth\.adminAllow needs auth\.adminTokens/],
    ])('%s', (_what, file, pattern) => {
      const message = errorOf(() => resolveConfig({ ...MINIMAL, ...file })).message;
      expect(message).toMatch(pattern);
      for (const secret of ['short-token', 'has a space', 'has/a/slash', 'has?a-query', 'x'.repeat(31)]) expect(message).not.toContain(secret);
    });

    it('the same contradictions are refused when they come from the environment', () => {
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_AUTH_CLIENT_TOKENS_MODE: 'required' })).message).toMatch(/auth\.clientTokens\.mode "required" needs/);
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_AUTH_ADMIN_TOKENS: `${TOKEN_A},tiny` })).message).toMatch(/auth\.adminTokens\[1\]: must be at least 16/);
      expect(errorOf(() => resolveConfig(MINIMAL, { TIDINGS_LIMITS_TRUST_PROXY: '10.0.0.0/8,nonsense' })).message).toMatch(/limits\.trustProxy\[1\]/);
    });

    it('positive control: each contradiction above resolves once its other half is given', () => {
      expect(resolveConfig({ ...MINIMAL, auth: { clientTokens: { mode: 'required', hmacSecret: SECRET } } }).auth.clientTokens.mode).toBe('required');
      expect(resolveConfig({ ...MINIMAL, auth: { adminTokens: [TOKEN_A], adminAllow: ['10.0.0.0/8'] } }).auth.adminAllow).toEqual(['10.0.0.0/8']);
      expect(resolveConfig({ ...MINIMAL, auth: { adminTokens: ["A-z0-9._~!$&'()*+,;=:@-"] } }).auth.adminTokens).toHaveLength(1);
    });
  });
});
