/**
 * Socket.IO across nodes: three gateway processes on one real Redis (bus, shared history and
 * the Socket.IO Redis adapter). Socket.IO and raw sockets on different nodes see the same
 * messages, once each; bad payloads get error acks; instances stay apart; and a Socket.IO
 * client whose node is killed replays what it missed from another node.
 */
import { io, type Socket } from 'socket.io-client';
import { getStatus, notification, post, sleep, startRedis, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { deliveryFaults, keysOf, publishSteadily, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

type Ack = { ok: boolean; error?: string; message?: string; replayed?: number };

interface SioClient {
  socket: Socket;
  received: Record<string, unknown>[];
  keys(): string[];
  emit(event: string, ...args: unknown[]): Promise<Ack>;
  waitFor(check: (keys: string[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
}

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const sios: Socket[] = [];
const raws: TestSocket[] = [];

async function connectSio(node: GatewayProcess, instance?: string): Promise<SioClient> {
  const socket = io(`http://127.0.0.1:${node.clientPort}`, {
    path: '/socket.io/',
    auth: instance ? { instance } : undefined,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  sios.push(socket);
  const received: Record<string, unknown>[] = [];
  socket.on('message', (m: Record<string, unknown>) => received.push(m));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const keys = () => received.map((m) => String(m.key));
  return {
    socket,
    received,
    keys,
    emit: (event, ...args) => socket.timeout(5_000).emitWithAck(event, ...args) as Promise<Ack>,
    async waitFor(check, what, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check(keys())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${keys().join(',')}`);
        await sleep(20);
      }
    },
  };
}

async function raw(node: GatewayProcess, phids: string[], instance?: string): Promise<TestSocket> {
  const s = await subscribedSocket(node.clientUrl, phids, instance);
  raws.push(s);
  return s;
}

beforeAll(async () => {
  redis = await startRedis();
  nodes = await startBusNodes(3, { redis: { url: redis.url, keyPrefix: uniquePrefix('socketio') } });
});

afterAll(async () => {
  for (const s of sios) s.close();
  await Promise.all(raws.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.kill()));
  if (redis.owned) await redis.stop();
});

describe('socket.io across nodes (redis)', () => {
  it('runs the Redis adapter on every node', async () => {
    for (const node of nodes) {
      const status = (await getStatus(node.adminUrl)).socketio as { adapter: string; redis: { pub: string; sub: string } };
      expect(status.adapter).toBe('redis');
      expect(status.redis).toEqual({ pub: 'ready', sub: 'ready' });
    }
  });

  it('a Socket.IO client and a raw client on different nodes both get every message once, wherever it was published', async () => {
    const PHID = 'PHID-SIO-MIX';
    const sioA = await connectSio(nodes[0]);
    const sioC = await connectSio(nodes[2]);
    expect(await sioA.emit('subscribe', [PHID])).toEqual({ ok: true });
    expect(await sioC.emit('subscribe', [PHID])).toEqual({ ok: true });
    const rawB = await raw(nodes[1], [PHID]);
    const keys: string[] = [];
    for (let i = 0; i < 30; i++) {
      const msg = notification([PHID]);
      keys.push(String(msg.key));
      expect((await post(nodes[i % 3].adminUrl, msg)).status).toBe(200);
    }
    await sioA.waitFor((k) => keys.every((x) => k.includes(x)), 'all messages on node 0');
    await sioC.waitFor((k) => keys.every((x) => k.includes(x)), 'all messages on node 2');
    await rawB.waitFor(() => keys.every((x) => keysOf(rawB).includes(x)), 10_000, 'all messages on node 1');
    await sleep(300);
    await rawB.roundTrip();
    for (const got of [sioA.keys(), sioC.keys(), keysOf(rawB)]) expect(deliveryFaults(got, keys)).toEqual({ missing: [], duplicates: [] });
    // Identical payloads on both transports. Order may differ between nodes: a message
    // published to node 1 reaches its local socket before an earlier one arrives by the bus.
    const byKey = (frames: Record<string, unknown>[]) => [...frames].sort((a, b) => String(a.key).localeCompare(String(b.key)));
    expect(byKey(sioA.received)).toEqual(byKey(rawB.received.filter((f) => f.type !== 'pong')));
  });

  it('answers bad payloads with error acks on every node and keeps the socket working', async () => {
    for (const node of nodes) {
      const sio = await connectSio(node);
      expect(await sio.emit('subscribe', 'PHID-X')).toMatchObject({ ok: false, error: 'invalid_payload' });
      expect(await sio.emit('unsubscribe', [null])).toMatchObject({ ok: false, error: 'invalid_payload' });
      expect(await sio.emit('replay', { age: 'soon' })).toMatchObject({ ok: false, error: 'invalid_payload' });
      expect(await sio.emit('shout', 1)).toMatchObject({ ok: false, error: 'unknown_event' });
      expect(await sio.emit('subscribe', ['PHID-AFTER-BAD'])).toEqual({ ok: true });
    }
    const msg = notification(['PHID-AFTER-BAD']);
    await post(nodes[1].adminUrl, msg);
    await sleep(300);
    for (const s of sios.slice(-3)) expect(s.connected).toBe(true);
    for (const node of nodes) expect(node.child.exitCode).toBeNull();
  });

  it('keeps instances apart across nodes, replay included', async () => {
    const PHID = 'PHID-SIO-TENANT';
    const acme = await connectSio(nodes[0], 'acme');
    const dflt = await connectSio(nodes[1]);
    await acme.emit('subscribe', [PHID]);
    await dflt.emit('subscribe', [PHID]);
    const rawAcme = await raw(nodes[2], [PHID], 'acme');
    const a = notification([PHID], { tenant: 'acme' });
    const d = notification([PHID], { tenant: 'default' });
    await post(nodes[1].adminUrl, a, { instance: 'acme' });
    await post(nodes[2].adminUrl, d);
    await acme.waitFor((k) => k.includes(String(a.key)), 'acme message');
    await dflt.waitFor((k) => k.includes(String(d.key)), 'default message');
    await rawAcme.waitFor(() => keysOf(rawAcme).includes(String(a.key)), 10_000, 'acme on raw');
    await sleep(300);
    expect(acme.keys()).toEqual([String(a.key)]);
    expect(dflt.keys()).toEqual([String(d.key)]);
    expect(keysOf(rawAcme)).toEqual([String(a.key)]);
    // A fresh acme socket on yet another node replays acme's history only.
    const late = await connectSio(nodes[2], 'acme');
    await late.emit('subscribe', [PHID]);
    expect(await late.emit('replay', { age: 60_000 })).toEqual({ ok: true, replayed: 1 });
    expect(late.keys()).toEqual([String(a.key)]);
  });

  it('a Socket.IO client whose node is killed reconnects to another node and replays what it missed', async () => {
    const PHID = 'PHID-SIO-KILL';
    const victim = nodes[2];
    const survivors = [nodes[0], nodes[1]];
    const orphan = await connectSio(victim);
    await orphan.emit('subscribe', [PHID]);
    const steady = await connectSio(survivors[0]);
    await steady.emit('subscribe', [PHID]);
    const rawSteady: TestSocket = await raw(survivors[1], [PHID]);

    let alive = [...nodes];
    const publisher = publishSteadily({ nodes: () => alive, phids: [PHID], ratePerSec: 40, max: 120, maxMs: 5_000 });
    await sleep(1_000);
    const lost = new Promise<string>((resolve) => orphan.socket.once('disconnect', (r) => resolve(r)));
    await victim.kill();
    alive = survivors;
    expect(await lost).toBe('transport close');
    await sleep(300);
    // Back through the load balancer on a surviving node: subscribe, then replay.
    const back = await connectSio(survivors[1]);
    await back.emit('subscribe', [PHID]);
    const ack = await back.emit('replay', { age: 60_000 });
    expect(ack.ok).toBe(true);
    await publisher.done;
    const acked = publisher.acked;
    expect(acked.length).toBeGreaterThan(80);
    expect(publisher.failed.every((f) => f.status === 0)).toBe(true);

    const before = orphan.keys();
    await back.waitFor((k) => acked.every((x) => before.includes(x) || k.includes(x)), 'every acknowledged message');
    // The replay covers everything acknowledged within the window. (A message accepted between
    // the subscribe and the replay's read may come live and replayed: clients de-duplicate by uniqueID.)
    expect(deliveryFaults(back.keys(), acked).missing).toEqual([]);
    await steady.waitFor((k) => acked.every((x) => k.includes(x)), 'steady socket.io client');
    await rawSteady.waitFor(() => acked.every((x) => keysOf(rawSteady).includes(x)), 10_000, 'steady raw client');
    await sleep(300);
    expect(deliveryFaults(steady.keys(), acked)).toEqual({ missing: [], duplicates: [] });
    expect(deliveryFaults(keysOf(rawSteady), acked).duplicates).toEqual([]);
    for (const n of survivors) expect(n.child.exitCode).toBeNull();
  });
});
