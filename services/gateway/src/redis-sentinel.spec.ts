/**
 * `redis.sentinels`: every connection the gateway opens (bus subscriber, commands, appends,
 * Socket.IO's adapter pub/sub) finds the master through real sentinels (three
 * `redis-server --sentinel` processes, a master and a replica, all with passwords), follows
 * it through a failover, and no password reaches a log line.
 */
import { Redis } from 'ioredis';
import { resolveConfig, type Logger, type TidingsConfig } from '@tidings/protocol';
import { startSentinelTopology, type SentinelTopology } from '@tidings/testing';
import type { Envelope } from '@tidings/protocol';
import type { RedisHistory } from '@tidings/history';
import type { Bus } from '@tidings/bus';
import { createSocketIoAdapter, type SocketIoAdapterHandle } from './client/socketio-adapter';
import { describeRedisTarget } from './redis-connections';
import { createRedisCollaborators } from './wiring-redis';

const PASSWORD = 'data-secret-5bd1c9';
const SENTINEL_PASSWORD = 'sentinel-secret-77ae20';

/** A logger that keeps every record as the JSON line pino would write. */
function recordingLogger(lines: string[], bindings: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (obj: object, msg?: string) => lines.push(JSON.stringify({ level, ...bindings, ...obj, msg }));
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

let topology: SentinelTopology;
let config: TidingsConfig;
const lines: string[] = [];
let history: RedisHistory;
let bus: Bus;
let adapter: SocketIoAdapterHandle;

beforeAll(async () => {
  topology = await startSentinelTopology({ password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD, downAfterMs: 1_000 });
  config = resolveConfig({
    redis: {
      sentinels: topology.sentinels,
      sentinelName: topology.masterName,
      password: PASSWORD,
      sentinelPassword: SENTINEL_PASSWORD,
      keyPrefix: `sentinel-${process.pid}:`,
      commandTimeoutMs: 1_000,
      waitReplicas: 1,
    },
  });
  const logger = recordingLogger(lines);
  ({ history, bus } = createRedisCollaborators(config, logger) as { history: RedisHistory; bus: Bus });
  await bus.start();
  adapter = createSocketIoAdapter(config, logger);
}, 30_000);

afterAll(async () => {
  await adapter?.close();
  await bus?.close();
  await history?.close();
  await topology?.stop();
});

const envelope = (id: string): Envelope => ({ id, instance: 'default', subscribers: ['PHID-a'], frame: `{"key":"${id}"}`, acceptedAt: Date.now() });

/** Names of our clients connected to the server on `port` (CLIENT LIST; the sentinels' own are left out). */
async function clientNames(port: number): Promise<string[]> {
  const admin = new Redis({ host: '127.0.0.1', port, password: PASSWORD, lazyConnect: true, retryStrategy: () => null });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    const list = (await admin.call('CLIENT', 'LIST')) as string;
    return [...list.matchAll(/name=(\S*)/g)].map((m) => m[1]).filter((n) => n.startsWith('tidings-')).sort();
  } finally {
    admin.disconnect();
  }
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const OUR_CONNECTIONS = ['tidings-appends', 'tidings-bus', 'tidings-commands', 'tidings-socketio-pub', 'tidings-socketio-sub'];

describe('redis.sentinels', () => {
  it('opens every connection on the master the sentinels name, with the passwords', async () => {
    const master = await topology.masterPort();
    let names: string[] = [];
    await eventually(
      async () => JSON.stringify((names = await clientNames(master))) === JSON.stringify(OUR_CONNECTIONS),
      5_000,
      `our five connections on the master ${master}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${names.join(', ')}`);
    });
    expect(bus.isConnected).toBe(true);
    expect(await history.appendOnce(envelope('first'))).toMatchObject({ offset: 1 });
    expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(['first']);
    // Positive control: the replica holds none of our connections.
    const replica = [...topology.servers.keys()].find((p) => p !== master)!;
    expect(await clientNames(replica)).toEqual([]);
  }, 15_000);

  it('follows the master through a failover (kill -9), without being rebuilt', async () => {
    const oldMaster = await topology.masterPort();
    await topology.servers.get(oldMaster)!.kill();
    const newMaster = await topology.waitForFailover(oldMaster, 20_000);
    // The promoted master has no replica until the old one rejoins: waitReplicas refuses.
    let refusal = '';
    await eventually(
      async () => {
        refusal = await history.appendOnce(envelope('unreplicated')).then(() => 'acknowledged', (err: Error) => err.message);
        return !/writeable|Connection is closed|did not answer/.test(refusal); // still reconnecting
      },
      10_000,
      'an answer from the new master',
    );
    expect(refusal).toMatch(/^history append: 0 of 1 replicas confirmed the write within 750 ms \(WAIT\)$/);
    await topology.rejoinAsReplica(oldMaster);
    await eventually(async () => JSON.stringify(await clientNames(newMaster)) === JSON.stringify(OUR_CONNECTIONS), 10_000, 'our five connections on the new master');
    await eventually(async () => bus.isConnected, 10_000, 'the bus up again');
    expect(await history.appendOnce(envelope('second'))).not.toBeNull();
    // What was acknowledged before the failover was on the replica that is master now.
    expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(['first', 'unreplicated', 'second']);
    expect(adapter.status()).toMatchObject({ redis: { pub: 'ready', sub: 'ready' } });
  }, 40_000);

  it('logs where Redis is, never a password', () => {
    const text = lines.join('\n');
    expect(text).toContain('redis: shared history and bus configured');
    expect(text).toContain(topology.sentinels[0]);
    // The failover above was logged (so the lines below were written with errors in them).
    expect(text).toMatch(/redis: connection failed, retrying/);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(SENTINEL_PASSWORD);
    expect(describeRedisTarget(config.redis)).toEqual({
      mode: 'sentinel',
      sentinels: topology.sentinels,
      sentinelName: 'mymaster',
      password: 'set',
      sentinelPassword: 'set',
    });
    // Positive control: the check finds a password where one is.
    expect(JSON.stringify(config.redis)).toContain(PASSWORD);
  });
});
