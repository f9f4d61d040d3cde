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

it('turns on TCP keepalive on client sockets, raw and Socket.IO', async () => {
  const { Gateway } = await import('./gateway');
  const { silentLogger } = await import('@tidings/protocol');
  const WebSocket = (await import('ws')).default;
  const { io } = await import('socket.io-client');
  const gw = await new Gateway({
    config: resolveConfig({ servers: [{ type: 'client', port: 0, listen: '127.0.0.1' }, { type: 'admin', port: 0, listen: '127.0.0.1' }] }),
    logger: silentLogger,
  }).start();
  const port = Number(new URL(gw.url('client')).port);
  const ws = new WebSocket(gw.url('client'));
  const sio = io(gw.url('client').replace(/^ws/, 'http'), { transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await new Promise((resolve) => ws.once('open', resolve));
    await new Promise((resolve) => sio.once('connect', () => resolve(undefined)));
    // The server's end of each connection, once no data is in flight (then ss shows the retransmit timer).
    let lines: string[] = [];
    for (let i = 0; i < 40; i++) {
      const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
      lines = out.split('\n').filter(Boolean);
      if (lines.length === 2 && lines.every((l) => l.includes('timer:(keepalive'))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/timer:\(keepalive,\d+(\.\d+)?(ms|sec)/);
  } finally {
    ws.terminate();
    sio.close();
    await gw.close();
  }
});
