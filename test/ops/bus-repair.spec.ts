/**
 * A bus that looks connected but has stopped delivering, on a real Redis connection: node A
 * reaches Redis through a TCP proxy that freezes A's subscriber connection (it stays open,
 * nothing arrives: a silently dead peer). The canary must notice (unready, for the reason
 * bus_not_delivering while the bus still reports connected), reconnect the subscriber, and
 * backfill what node B accepted meanwhile, so A's socket misses nothing.
 */
import { connectSocket, messagesOf, post, sleep, spawnGateway, startRedisServer, startTcpProxy, type GatewayProcess, type RedisHandle, type TcpProxy, type TestSocket } from '@tidings/testing';

let redis: RedisHandle;
let proxy: TcpProxy;
const gateways: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  proxy = await startTcpProxy(redis.port);
});
afterAll(async () => {
  await Promise.allSettled(sockets.map((s) => s.close()));
  await Promise.allSettled(gateways.map((g) => g.stop('SIGINT')));
  await proxy.close();
  await redis.stop();
});

async function readyz(g: GatewayProcess): Promise<{ status: number; body: { reasons?: { code: string }[] } }> {
  const res = await fetch(`${g.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { reasons?: { code: string }[] } };
}

async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await sleep(50);
  }
}

it.each(['broadcast', 'interest'])('reconnects a %s bus that stopped delivering while it looked connected, and backfills what it missed', async (bus) => {
  const health = { canaryIntervalMs: 200, canaryMaxAgeMs: 1_000 };
  const keyPrefix = `repair-${bus}-${process.pid}:`;
  const a = await spawnGateway({ config: { redis: { url: proxy.url('redis'), bus, keyPrefix }, health } });
  const b = await spawnGateway({ config: { redis: { url: redis.url, bus, keyPrefix }, health } });
  gateways.push(a, b);
  for (const g of [a, b]) await until(() => readyz(g), (r) => r.status === 200, 'ready');
  const socket = await connectSocket(a.clientUrl);
  sockets.push(socket);
  socket.send('subscribe', ['PHID-REPAIR']);
  await socket.roundTrip();
  expect((await post(b.adminUrl, { subscribers: ['PHID-REPAIR'], key: 'before' })).status).toBe(200);
  await socket.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the message before the fault');

  // Freeze A's subscriber connection only (ioredis names it with CLIENT SETNAME).
  expect(proxy.freeze(/tidings-bus/)).toBeGreaterThanOrEqual(1);
  expect((await post(b.adminUrl, { subscribers: ['PHID-REPAIR'], key: 'during' })).status).toBe(200);

  // Unready for the canary alone: the connection still looks up.
  const unready = await until(() => readyz(a), (r) => r.status === 503, 'A unready');
  expect(unready.body.reasons?.map((r) => r.code)).toEqual(['bus_not_delivering']);

  // Repaired: ready again, and the message published during the freeze arrived, once.
  await until(() => readyz(a), (r) => r.status === 200, 'A ready again');
  await socket.waitFor((r) => messagesOf(r).length === 2, 5_000, 'the backfilled message');
  expect((await post(b.adminUrl, { subscribers: ['PHID-REPAIR'], key: 'after' })).status).toBe(200);
  await socket.waitFor((r) => messagesOf(r).length === 3, 5_000, 'the message after the repair');
  await socket.roundTrip();
  expect(messagesOf(socket.received).map((m) => m.key)).toEqual(['before', 'during', 'after']);

  const status = (await (await fetch(`${a.adminUrl}/status/`)).json()) as { canary: { repairs: number }; bus: { reconnects: number } };
  expect(status.canary.repairs).toBeGreaterThanOrEqual(1);
  expect(status.bus.reconnects).toBe(status.canary.repairs);
  expect(a.logs.some((l) => l.msg === 'bus: connected but not delivering; reconnecting')).toBe(true);
  const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
  expect(metrics).toMatch(/^tidings_bus_reconnects_total [1-9]/m);
});
