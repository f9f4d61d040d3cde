/**
 * The Redis bus routed by interest (redis.bus "interest"), with real gateway processes on a
 * Redis of its own: a gateway receives only messages with a recipient among its sockets,
 * each socket still gets each message once, a subscribe is answered once it routes, a dead
 * gateway stops costing the others after its lease, a reconnect storm costs few round
 * trips, and routing survives Redis losing its state.
 */
import { Redis } from 'ioredis';
import { connectSocket, getStatus, messagesOf, post, sleep, spawnGateway, startRedisServer, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { uniquePrefix } from '../support/redis-cluster';

let redis: RedisHandle;
let control: Redis;
const gateways: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  control = new Redis(redis.url);
});
afterAll(async () => {
  control.disconnect();
  await redis.stop();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.ws.terminate();
  await Promise.all(gateways.splice(0).map((g) => g.kill()));
});

async function cluster(n: number, extra: Record<string, unknown> = {}): Promise<{ nodes: GatewayProcess[]; prefix: string }> {
  const prefix = uniquePrefix('interest');
  const nodes: GatewayProcess[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await spawnGateway({ config: { redis: { url: redis.url, keyPrefix: prefix, bus: 'interest', ...extra }, health: { canaryIntervalMs: 200, canaryMaxAgeMs: 2_000 } } }));
  }
  gateways.push(...nodes);
  // Ready: each node's bus is up and its canary went the whole route.
  for (const node of nodes) await until(async () => (await fetch(`${node.adminUrl}/readyz`)).status === 200, 'ready');
  return { nodes, prefix };
}

async function socketOn(node: GatewayProcess, phids: string[]): Promise<TestSocket> {
  const s = await connectSocket(node.clientUrl);
  sockets.push(s);
  s.send('subscribe', phids);
  await s.roundTrip();
  return s;
}

const busOf = async (n: GatewayProcess) => (await getStatus(n.adminUrl)).bus as { connected: boolean; received: number; routing: string; watched: number };

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

it('routes each message only to the gateways with a recipient, once each', async () => {
  const { nodes } = await cluster(3);
  const [a, b, c] = nodes;
  const onA = await socketOn(a, ['PHID-A']);
  const onB = await socketOn(b, ['PHID-B', 'PHID-AB']);
  const alsoA = await socketOn(a, ['PHID-AB']);
  const before = await Promise.all(nodes.map(busOf));
  expect(before.map((s) => s.routing)).toEqual(['interest', 'interest', 'interest']);
  // Published on C, which holds no socket: each message reaches exactly the gateways that want it.
  for (let i = 0; i < 5; i++) {
    expect((await post(c.adminUrl, { subscribers: ['PHID-A'], key: `a${i}` })).status).toBe(200);
    expect((await post(c.adminUrl, { subscribers: ['PHID-B'], key: `b${i}` })).status).toBe(200);
    expect((await post(c.adminUrl, { subscribers: ['PHID-AB', 'PHID-A', 'PHID-B'], key: `ab${i}` })).status).toBe(200);
  }
  await onA.waitFor((r) => messagesOf(r).length === 10, 5_000, "A's messages");
  await onB.waitFor((r) => messagesOf(r).length === 10, 5_000, "B's messages");
  await alsoA.waitFor((r) => messagesOf(r).length === 5, 5_000, 'the shared messages on A');
  await sleep(200);
  const after = await Promise.all(nodes.map(busOf));
  // A got its 5 and the 5 shared ones (once each, though they name two of its PHIDs); B the same; C nothing.
  expect(after.map((s, i) => s.received - before[i].received)).toEqual([10, 10, 0]);
  // Publishing is the history script's part: no node warned about anything (a bus publish, a write).
  expect(nodes.flatMap((n) => n.logs.filter((l) => typeof l.level === 'number' && l.level >= 40).map((l) => l.msg))).toEqual([]);
  for (const s of [onA, onB, alsoA]) await s.roundTrip();
  expect(messagesOf(onA.received).map((m) => m.key).sort()).toEqual([...['a0', 'a1', 'a2', 'a3', 'a4'], ...['ab0', 'ab1', 'ab2', 'ab3', 'ab4']].sort());
  expect(messagesOf(onB.received).map((m) => m.key).sort()).toEqual([...['b0', 'b1', 'b2', 'b3', 'b4'], ...['ab0', 'ab1', 'ab2', 'ab3', 'ab4']].sort());
});

it('answers a subscribe once it routes: a publish right after the pong reaches the socket', async () => {
  const { nodes } = await cluster(2);
  const [a, b] = nodes;
  for (let i = 0; i < 20; i++) {
    const s = await socketOn(a, [`PHID-FRESH-${i}`]); // subscribe, then a ping round trip
    expect((await post(b.adminUrl, { subscribers: [`PHID-FRESH-${i}`], key: `k${i}` })).status).toBe(200);
    await s.waitFor((r) => messagesOf(r).length === 1, 5_000, `message ${i}`);
  }
});

it('stops publishing to a dead gateway after its lease, and drops it from the registry', async () => {
  const { nodes, prefix } = await cluster(2, { routingLeaseMs: 600 });
  const [a, b] = nodes;
  await socketOn(b, ['PHID-DEAD']);
  const key = `{${prefix}h:default}:i:default:PHID-DEAD`;
  expect(await control.scard(key)).toBe(1);
  await b.kill();
  await sleep(900); // past the lease
  expect((await post(a.adminUrl, { subscribers: ['PHID-DEAD'], key: 'x' })).status).toBe(200);
  expect(await control.scard(key)).toBe(0);
});

it('costs a handful of registry writes for a reconnect storm of many sockets', async () => {
  const { nodes } = await cluster(1);
  const [a] = nodes;
  const calls = async () => {
    const info = await control.info('commandstats');
    return [...info.matchAll(/cmdstat_(evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[2]), 0);
  };
  const before = await calls();
  const storm = 1_000;
  const opened = await Promise.all(
    Array.from({ length: storm }, async (_, i) => {
      const s = await connectSocket(a.clientUrl);
      sockets.push(s);
      s.send('subscribe', [`PHID-STORM-${i}`, `PHID-STORM-${i}-b`, 'PHID-STORM-shared']);
      return s;
    }),
  );
  await Promise.all(opened.map((s) => s.roundTrip(20_000)));
  const writes = (await calls()) - before;
  expect((await busOf(a)).watched).toBeGreaterThanOrEqual(2 * storm + 1);
  // Each flush writes every queued change of an instance in one script call (chunks of 500).
  expect(writes).toBeLessThan(storm / 10);
});

it('rebuilds routing after Redis lost its state: the canary notices, the bus reconnects and rewrites it', async () => {
  const { nodes } = await cluster(2);
  const [a, b] = nodes;
  const s = await socketOn(b, ['PHID-FLUSH']);
  await until(async () => (await fetch(`${b.adminUrl}/readyz`)).status === 200, 'ready');
  await control.flushall();
  // Registry gone: the canary cannot come back until B rewrites its routing.
  await until(async () => ((await getStatus(b.adminUrl)).canary as { repairs: number }).repairs > 0, 'a canary repair', 15_000);
  await until(async () => (await fetch(`${b.adminUrl}/readyz`)).status === 200, 'ready again', 15_000);
  expect((await post(a.adminUrl, { subscribers: ['PHID-FLUSH'], key: 'after' })).status).toBe(200);
  await s.waitFor((r) => messagesOf(r).some((m) => m.key === 'after'), 5_000, 'the message after the flush');
});

it('writes a registry entry again after Redis refused it, while the bus stays up', async () => {
  const { nodes, prefix } = await cluster(2, { commandTimeoutMs: 500 });
  const [a, b] = nodes;
  // A key of the wrong type makes the registry script fail for this PHID alone (WRONGTYPE);
  // the canary, on keys of its own, keeps succeeding, so nothing reconnects the bus.
  const key = `{${prefix}h:default}:i:default:PHID-POISONED`;
  await control.set(key, 'not a set');
  const s = await socketOn(b, ['PHID-POISONED']); // answered once settled() gives up waiting (about 1 s)
  await until(() => b.logs.some((l) => l.msg === 'bus: interest registry write failed; trying again'), 'the failed write');
  await control.del(key);
  await until(async () => (await control.scard(key)) === 1, 'the entry written again', 5_000);
  expect((await post(a.adminUrl, { subscribers: ['PHID-POISONED'], key: 'routed' })).status).toBe(200);
  await s.waitFor((r) => messagesOf(r).some((m) => m.key === 'routed'), 5_000, 'the message routed after the retry');
  expect(((await getStatus(b.adminUrl)).bus as { reconnects: number }).reconnects).toBe(0);
});

it('subscribes again to a channel Redis refused, while the bus stays up', async () => {
  // A Redis user whose channels cover the default instance and the canary's, not "acme".
  const user = `gw-${Math.random().toString(36).slice(2, 8)}`;
  await control.call('ACL', 'SETUSER', user, 'on', '>a-password', '~*', '+@all', 'resetchannels', '&*:to:default:*', '&*:to:~tidings:*');
  try {
    const prefix = uniquePrefix('interest-acl');
    const config = (url: string) => ({
      redis: { url, keyPrefix: prefix, bus: 'interest', commandTimeoutMs: 500 },
      health: { canaryIntervalMs: 200, canaryMaxAgeMs: 2_000 },
    });
    const a = await spawnGateway({ config: config(redis.url) });
    const limited = await spawnGateway({ config: config(redis.url.replace('redis://', `redis://${user}:a-password@`)) });
    gateways.push(a, limited);
    for (const node of [a, limited]) await until(async () => (await fetch(`${node.adminUrl}/readyz`)).status === 200, 'ready');
    const s = await connectSocket(`${limited.clientUrl}/~acme/`);
    sockets.push(s);
    s.send('subscribe', ['PHID-ACL']);
    await s.roundTrip();
    await until(() => limited.logs.some((l) => l.msg === 'bus: interest registry write failed; trying again' && String(l.err).includes('NOPERM')), 'the refused SUBSCRIBE');
    await control.call('ACL', 'SETUSER', user, '&*:to:acme:*');
    // Published until it arrives: the gateway subscribes again on its own, without a reconnect.
    for (let i = 0; !messagesOf(s.received).length; i++) {
      if (i > 40) throw new Error('the channel was never subscribed again');
      expect((await post(a.adminUrl, { subscribers: ['PHID-ACL'], key: `k${i}` }, { instance: 'acme' })).status).toBe(200);
      await sleep(125);
    }
    expect(((await getStatus(limited.adminUrl)).bus as { reconnects: number }).reconnects).toBe(0);
  } finally {
    await control.call('ACL', 'DELUSER', user);
  }
});
