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
      maxBufferedBytes: 1_048_576,
      maxConnections: 0,
      maxInstances: 10_000,
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
