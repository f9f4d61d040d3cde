/**
 * The Redis connections' TCP settings, read back from the kernel (`ss -o` shows a socket's
 * keepalive timer), on a real Redis server.
 */
import { execFileSync } from 'node:child_process';
import { resolveConfig } from '@tidings/protocol';
import { startRedisServer, type RedisHandle } from '@tidings/testing';
import { Redis } from 'ioredis';
import { createRedisConnection } from './redis-connections';

let redis: RedisHandle;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(() => redis.stop());

/** The `ss -o` lines of this process's established connections to the test Redis. */
function sockets(): string[] {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( dport = :${redis.port} )`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

it('turns on TCP keepalive, so a dead peer is noticed in seconds', async () => {
  const config = resolveConfig({ redis: { url: redis.url } });
  const connection = createRedisConnection(config.redis, { name: 'keepalive-test', failFast: true, lazyConnect: false });
  // Positive control: a plain ioredis connection has no keepalive timer.
  const plain = new Redis(redis.url);
  try {
    await new Promise((resolve) => connection.once('ready', resolve));
    await plain.ping();
    const lines = sockets();
    expect(lines).toHaveLength(2);
    const ours = (connection as Redis).stream.localPort;
    const timerOf = (line: string) => /timer:\(keepalive,([\d.]+)(ms|sec|min)/.exec(line);
    const seconds = (m: RegExpExecArray) => Number(m[1]) * { ms: 0.001, sec: 1, min: 60 }[m[2] as 'ms' | 'sec' | 'min'];
    const mine = lines.find((l) => l.includes(`:${ours} `))!;
    const other = lines.find((l) => l !== mine)!;
    // Ours: the first probe within 5 s of silence.
    expect(seconds(timerOf(mine)!)).toBeLessThanOrEqual(5);
    // Positive control: ioredis's default leaves the kernel's two hours.
    expect(seconds(timerOf(other)!)).toBeGreaterThan(3600);
  } finally {
    connection.disconnect();
    plain.disconnect();
  }
});
