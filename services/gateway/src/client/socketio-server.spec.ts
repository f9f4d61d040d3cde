/**
 * Socket.IO on the client port: a Gateway in this process on 127.0.0.1 port 0, real
 * socket.io-client and ws clients, publishes over the real admin port.
 */
import http from 'node:http';
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { connectSocket, messagesOf, notification, post, sleep, type TestSocket } from '@tidings/testing';
import { Gateway } from '../gateway';

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    ...extra,
  });
}

type Ack = { ok: boolean; error?: string; message?: string; replayed?: number; added?: number; refused?: number };

interface SioClient {
  socket: Socket;
  received: Record<string, unknown>[];
  emit(event: string, ...args: unknown[]): Promise<Ack>;
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): void;
}

const opened: { close(): void }[] = [];

async function connectSio(url: string, auth?: Record<string, unknown>): Promise<SioClient> {
  const socket = io(url.replace(/^ws/, 'http'), { path: '/socket.io/', auth, transports: ['websocket'], reconnection: false, forceNew: true });
  const received: Record<string, unknown>[] = [];
  socket.on('message', (m: Record<string, unknown>) => received.push(m));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const client: SioClient = {
    socket,
    received,
    emit: (event, ...args) => socket.timeout(5_000).emitWithAck(event, ...args) as Promise<Ack>,
    async waitFor(n, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} messages; got ${JSON.stringify(received)}`);
        await sleep(10);
      }
    },
    close: () => socket.close(),
  };
  opened.push(client);
  return client;
}

async function connectRaw(url: string): Promise<TestSocket> {
  const s = await connectSocket(url);
  opened.push({ close: () => void s.close() });
  return s;
}

afterEach(() => {
  for (const c of opened.splice(0)) c.close();
});

describe('socket.io on the client port', () => {
  let gw: Gateway;
  let client: string;
  let admin: string;

  beforeAll(async () => {
    gw = await new Gateway({ config: config({ limits: { maxSubscriptionsPerSocket: 5 } }), logger: silentLogger }).start();
    client = gw.url('client');
    admin = gw.url('admin');
  });
  afterAll(() => gw.close());

  it('keeps Aphlict behaviour beside it: plain HTTP gets 501, raw upgrades work on any other path and stay open', async () => {
    const plain = await fetch(client.replace('ws', 'http') + '/anything');
    expect(plain.status).toBe(501);
    const raw = await connectRaw(`${client}/~acme/`);
    // Past engine.io's 1 s timer for upgrades it does not own (destroyUpgrade is off).
    await sleep(1_300);
    await raw.roundTrip();
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('answers engine.io requests on its path and nothing else answers them', async () => {
    const res = await fetch(`${client.replace('ws', 'http')}/socket.io/?EIO=4&transport=polling`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^0\{"sid":/);
    const bad = await fetch(`${client.replace('ws', 'http')}/socket.io/?transport=nope`);
    expect(bad.status).toBe(400);
    // A raw-protocol upgrade on the Socket.IO path is engine.io's (refused), not a raw Aphlict socket.
    const ws = new WebSocket(`${client}/socket.io/`);
    const outcome = await new Promise<string>((resolve) => {
      ws.once('open', () => resolve('open'));
      ws.once('unexpected-response', (_req, r: http.IncomingMessage) => resolve(`http ${r.statusCode}`));
      ws.once('error', () => resolve('error'));
    });
    ws.terminate();
    expect(outcome).toBe('http 400');
  });

  it('delivers the same JSON object a raw socket receives, once, as a message event', async () => {
    const sio = await connectSio(client);
    const raw = await connectRaw(client);
    expect(await sio.emit('subscribe', ['PHID-A', 'PHID-B'])).toEqual({ ok: true });
    raw.send('subscribe', ['PHID-A']);
    await raw.roundTrip();
    const msg = notification(['PHID-A', 'PHID-B'], { text: 'é ✓' });
    expect((await post(admin, msg)).status).toBe(200);
    await sio.waitFor(1);
    await raw.waitFor((r) => messagesOf(r).length === 1);
    await sleep(100);
    expect(sio.received).toEqual(messagesOf(raw.received));
    expect(sio.received[0]).toMatchObject({ ...msg, touched: [gw.node.fingerprint] });
  });

  it('stops delivering after unsubscribe', async () => {
    const sio = await connectSio(client);
    await sio.emit('subscribe', ['PHID-U']);
    expect(await sio.emit('unsubscribe', ['PHID-U'])).toEqual({ ok: true });
    await post(admin, notification(['PHID-U']));
    await sio.emit('subscribe', ['PHID-V']);
    await post(admin, notification(['PHID-V'], { marker: 'v' }));
    await sio.waitFor(1);
    await sleep(100);
    expect(sio.received.map((m) => m.marker)).toEqual(['v']);
  });

  it('answers bad payloads on every event with an error ack and keeps the socket working', async () => {
    const sio = await connectSio(client);
    const bad: [string, ...unknown[]][] = [
      ['subscribe', 'PHID-A'],
      ['subscribe', [1, 2]],
      ['subscribe', ['']],
      ['subscribe'],
      ['subscribe', null],
      ['unsubscribe', { phids: [] }],
      ['replay', 'soon'],
      ['replay', { age: -5 }],
      ['replay', { age: 'x' }],
      ['replay', [1]],
    ];
    for (const [event, ...args] of bad) {
      const ack = await sio.emit(event, ...args);
      expect({ event, args, ack }).toEqual({ event, args, ack: expect.objectContaining({ ok: false, error: 'invalid_payload' }) });
      expect(typeof ack.message).toBe('string');
    }
    expect(await sio.emit('publish', { subscribers: ['x'] })).toMatchObject({ ok: false, error: 'unknown_event' });
    expect(await sio.emit('message', 'hi')).toMatchObject({ ok: false, error: 'unknown_event' });
    // Events without an ack do not hurt either.
    sio.socket.emit('subscribe', 42);
    sio.socket.emit('nonsense');
    expect(await sio.emit('subscribe', ['PHID-OK'])).toEqual({ ok: true });
    await post(admin, notification(['PHID-OK']));
    await sio.waitFor(1);
    expect(sio.socket.connected).toBe(true);
    const status = (await gw.status.report('default')).socketio as { rejected: Record<string, number> };
    expect(status.rejected.invalid_payload).toBeGreaterThanOrEqual(bad.length);
    expect(status.rejected.unknown_event).toBeGreaterThanOrEqual(2);
  });

  it('keeps instances apart: auth.instance picks the tenant, absent means default', async () => {
    const acme = await connectSio(client, { instance: 'acme' });
    const dflt = await connectSio(client);
    const rawAcme = await connectRaw(`${client}/~acme/`);
    await acme.emit('subscribe', ['PHID-I']);
    await dflt.emit('subscribe', ['PHID-I']);
    rawAcme.send('subscribe', ['PHID-I']);
    await rawAcme.roundTrip();
    await post(admin, notification(['PHID-I'], { tenant: 'acme' }), { instance: 'acme' });
    await post(admin, notification(['PHID-I'], { tenant: 'default' }));
    await acme.waitFor(1);
    await dflt.waitFor(1);
    await rawAcme.waitFor((r) => messagesOf(r).length === 1);
    await sleep(100);
    expect(acme.received.map((m) => m.tenant)).toEqual(['acme']);
    expect(dflt.received.map((m) => m.tenant)).toEqual(['default']);
    expect(messagesOf(rawAcme.received)).toEqual(acme.received);
    // Replay is per instance too.
    expect(await dflt.emit('replay', { age: 60_000 })).toEqual({ ok: true, replayed: 1 });
  });

  it('refuses an invalid instance with a connect_error', async () => {
    await expect(connectSio(client, { instance: 'a/b' })).rejects.toThrow(/invalid instance/);
    await expect(connectSio(client, { instance: 42 })).rejects.toThrow(/invalid instance/);
  });

  it('replays matching history as message events before the ack', async () => {
    const early = notification(['PHID-R1'], { n: 1 });
    const other = notification(['PHID-R-OTHER'], { n: 2 });
    const late = notification(['PHID-R2', 'PHID-R1'], { n: 3 });
    for (const m of [early, other, late]) await post(admin, m);
    const sio = await connectSio(client);
    await sio.emit('subscribe', ['PHID-R1', 'PHID-R2']);
    const countAtAck: number[] = [];
    const ack = await new Promise<Ack>((resolve) =>
      sio.socket.emit('replay', { age: 60_000 }, (a: Ack) => {
        countAtAck.push(sio.received.length);
        resolve(a);
      }),
    );
    expect(ack).toEqual({ ok: true, replayed: 2 });
    expect(countAtAck).toEqual([2]);
    expect(sio.received.map((m) => m.n)).toEqual([1, 3]);
    // age 1 ms: nothing that old is newer.
    await sleep(20);
    expect(await sio.emit('replay', { age: 1 })).toEqual({ ok: true, replayed: 0 });
  });

  it('applies the subscription cap and says how many PHIDs were refused', async () => {
    const sio = await connectSio(client);
    expect(await sio.emit('subscribe', ['C1', 'C2', 'C3'])).toEqual({ ok: true });
    const ack = await sio.emit('subscribe', ['C3', 'C4', 'C5', 'C6', 'C7']);
    expect(ack).toMatchObject({ ok: false, error: 'subscription_cap', added: 2, refused: 2 });
    await post(admin, notification(['C5'], { n: 5 }));
    await post(admin, notification(['C6'], { n: 6 }));
    await sio.waitFor(1);
    await sleep(100);
    expect(sio.received.map((m) => m.n)).toEqual([5]);
  });

  it('counts a PHID once toward the cap however often it is sent, and an unsubscribe makes room', async () => {
    const sio = await connectSio(client);
    expect(await sio.emit('subscribe', ['D1', 'D1', 'D2', 'D2', 'D3'])).toEqual({ ok: true });
    expect(await sio.emit('subscribe', ['D1', 'D2', 'D3', 'D4', 'D5'])).toEqual({ ok: true });
    expect(await sio.emit('subscribe', ['D6', 'D6'])).toMatchObject({ ok: false, error: 'subscription_cap', added: 0, refused: 2 });
    expect(await sio.emit('unsubscribe', ['D1', 'NOT-HELD', 'D1'])).toEqual({ ok: true });
    expect(await sio.emit('subscribe', ['D6', 'D6', 'D7'])).toMatchObject({ ok: false, error: 'subscription_cap', added: 1, refused: 1 });
    for (const n of [1, 6, 7, 5]) await post(admin, notification([`D${n}`], { n }));
    await sio.waitFor(2);
    await sleep(100);
    expect(sio.received.map((m) => m.n)).toEqual([6, 5]);
  });

  it('counts connections and deliveries in /status/', async () => {
    const before = (await gw.status.report('default')).socketio as Record<string, number>;
    const sio = await connectSio(client, { instance: 'counted' });
    await sio.emit('subscribe', ['PHID-S']);
    await post(admin, notification(['PHID-S']), { instance: 'counted' });
    await sio.waitFor(1);
    const after = (await gw.status.report('counted')).socketio as Record<string, unknown>;
    expect(after).toMatchObject({ enabled: true, path: '/socket.io/', adapter: 'memory' });
    expect(after.total).toBe(before.total + 1);
    expect(after.deliveries).toBe(before.deliveries + 1);
    expect((after.activeByInstance as Record<string, number>).counted).toBe(1);
  });
});

describe('socket.io limits', () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await new Gateway({
      config: config({ limits: { maxFrameBytes: 2_048, maxSubscriptionsPerSocket: 50, maxBufferedBytes: 65_536, maxBodyBytes: 32_768, maxConnections: 2 } }),
      logger: silentLogger,
    }).start();
  });
  afterAll(() => gw.close());

  it('closes a socket that sends a frame over limits.maxFrameBytes', async () => {
    const sio = await connectSio(gw.url('client'));
    const reason = new Promise<string>((resolve) => sio.socket.once('disconnect', (r) => resolve(r)));
    sio.socket.emit('subscribe', ['x'.repeat(4_096)]);
    expect(await reason).toMatch(/transport (close|error)/);
    for (let i = 0; i < 50 && !gw.socketio!.counters.rejected.get('frame_too_large'); i++) await sleep(10);
    expect(gw.socketio!.counters.rejected.get('frame_too_large')).toBe(1);
  });

  it('counts Socket.IO and raw sockets together against limits.maxConnections', async () => {
    const a = await connectSio(gw.url('client'));
    await connectRaw(gw.url('client'));
    await expect(connectSio(gw.url('client'))).rejects.toThrow(/too many connections/);
    await expect(connectSocket(gw.url('client'))).rejects.toThrow(/503/);
    a.close();
  });

  it('counts Socket.IO instances with raw ones against limits.maxInstances', async () => {
    const small = await new Gateway({ config: config({ limits: { maxInstances: 1 } }), logger: silentLogger }).start();
    try {
      await connectRaw(small.url('client'));
      await expect(connectSio(small.url('client'), { instance: 'other' })).rejects.toThrow(/too many instances/);
      const same = await connectSio(small.url('client'));
      expect(same.socket.connected).toBe(true);
      same.close();
      expect(small.socketio!.status().rejected).toMatchObject({ instance_limit: 1 });
    } finally {
      await small.close();
    }
  });

  it('shares limits.maxSubscriptionsPerNode between raw and Socket.IO sockets, and gives it back when they leave', async () => {
    const small = await new Gateway({
      config: config({ limits: { maxSubscriptionsPerSocket: 4, maxSubscriptionsPerNode: 5, maxFrameBytes: 4_096 } }),
      logger: silentLogger,
    }).start();
    try {
      const raw = await connectRaw(small.url('client'));
      raw.send('subscribe', ['R1', 'R2', 'R3']);
      await raw.roundTrip();
      const sio = await connectSio(small.url('client'));
      expect(await sio.emit('subscribe', ['S1', 'S2', 'S3'])).toMatchObject({ ok: false, error: 'subscription_cap', added: 2, refused: 1 });
      raw.send('subscribe', ['R4']); // the node is full: ignored, counted
      await raw.roundTrip();
      expect(small.node.subscriptions.held).toBe(5);
      expect(small.node.counters.rejected.get('node_subscription_cap')).toBe(2);
      expect(await sio.emit('unsubscribe', ['S1'])).toEqual({ ok: true });
      raw.ws.close();
      for (let i = 0; i < 100 && small.node.subscriptions.held > 1; i++) await sleep(10);
      expect(small.node.subscriptions.held).toBe(1);
      expect(await sio.emit('subscribe', ['S3', 'S4', 'S5'])).toEqual({ ok: true });
      sio.close();
      for (let i = 0; i < 100 && small.node.subscriptions.held > 0; i++) await sleep(10);
      expect(small.node.subscriptions.held).toBe(0);
    } finally {
      await small.close();
    }
  });

  it('cuts off a reader whose backlog passes limits.maxBufferedBytes', async () => {
    // The previous test's sockets count against maxConnections until the server saw them go.
    for (let i = 0; i < 250 && gw.socketio!.connectionCount + gw.clientConnections > 0; i++) await sleep(20);
    // A hand-made engine.io client over ws that stops reading after it subscribed.
    const url = `${gw.url('client')}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url);
    const frames: string[] = [];
    ws.on('message', (d) => frames.push(d.toString()));
    await new Promise((r) => ws.once('open', r));
    const waitFrame = async (prefix: string) => {
      const deadline = Date.now() + 5_000;
      while (!frames.some((f) => f.startsWith(prefix))) {
        if (Date.now() > deadline) throw new Error(`no ${prefix} frame: ${frames.join(' | ')}`);
        await sleep(10);
      }
    };
    await waitFrame('0{');
    ws.send('40');
    await waitFrame('40');
    ws.send('420["subscribe",["PHID-SLOW"]]');
    await waitFrame('430');
    const closed = new Promise((r) => ws.once('close', r));
    ws.pause();
    const big = 'x'.repeat(16_384);
    const before = gw.node.counters.slowReaderCloses;
    for (let i = 0; i < 2_000 && gw.node.counters.slowReaderCloses === before; i++) {
      await gw.node.publish('default', { subscribers: ['PHID-SLOW'], uniqueID: `slow-${i}`, big });
      if (i % 50 === 0) await sleep(1);
    }
    expect(gw.node.counters.slowReaderCloses).toBe(before + 1);
    ws.resume();
    await closed;
    const status = (await gw.status.report('default')).socketio as Record<string, number>;
    expect(status.slowReaderCloses).toBe(1);
  });

  it('drops Socket.IO transports at shutdown so clients reconnect elsewhere', async () => {
    const own = await new Gateway({ config: config(), logger: silentLogger }).start();
    const sio = await connectSio(own.url('client'));
    const reason = new Promise<string>((resolve) => sio.socket.once('disconnect', (r) => resolve(r)));
    await own.close();
    expect(await reason).toBe('transport close');
  });
});
