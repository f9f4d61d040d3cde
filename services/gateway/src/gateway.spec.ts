/**
 * One gateway in this process, on 127.0.0.1 port 0, driven with real WebSockets and HTTP:
 * the message path (publish, touched, duplicates, delivery, replay), the client port
 * (501, instances, frames, limits, slow readers), TLS and close().
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { resolveConfig, silentLogger, type Logger } from '@tidings/protocol';
import { Gateway } from './gateway';

// ---------------------------------------------------------------- helpers

function gatewayConfig(extra: Record<string, unknown> = {}, servers?: Record<string, unknown>[]) {
  return resolveConfig({
    servers: servers ?? [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    ...extra,
  });
}

async function startGateway(extra: Record<string, unknown> = {}): Promise<Gateway> {
  return new Gateway({ config: gatewayConfig(extra), logger: silentLogger }).start();
}

interface Client {
  ws: WebSocket;
  /** Text of every frame received, in order. */
  texts: string[];
  /** Parsed frames that are not pongs. */
  messages(): Record<string, unknown>[];
  pongs(): number;
  send(command: string, data?: unknown): void;
  waitFor(predicate: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** ping and wait for its pong: every frame sent before has been handled. */
  roundTrip(): Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
}

const clients: Client[] = [];

async function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
  const ws = new WebSocket(url, options);
  const texts: string[] = [];
  const waiters = new Set<() => void>();
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of [...waiters]) w();
    }),
  );
  ws.on('message', (data) => {
    texts.push(data.toString());
    for (const w of [...waiters]) w();
  });
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', reject);
  });
  const parsed = () => texts.map((t) => JSON.parse(t) as Record<string, unknown>);
  const client: Client = {
    ws,
    texts,
    closed,
    messages: () => parsed().filter((f) => f.type !== 'pong'),
    pongs: () => parsed().filter((f) => f.type === 'pong').length,
    send: (command, data) => ws.send(JSON.stringify(data === undefined ? { command } : { command, data })),
    waitFor(predicate, what, timeoutMs = 5_000) {
      if (predicate()) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!predicate()) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(texts).slice(0, 400)}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async roundTrip() {
      const before = client.pongs();
      client.send('ping');
      await client.waitFor(() => client.pongs() > before, 'pong');
    },
  };
  clients.push(client);
  return client;
}

async function subscribed(url: string, phids: string[]): Promise<Client> {
  const c = await connect(url);
  c.send('subscribe', phids);
  await c.roundTrip();
  return c;
}

async function publish(admin: string, message: unknown, instance?: string) {
  const res = await fetch(`${admin}/${instance === undefined ? '' : `?instance=${encodeURIComponent(instance)}`}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(message),
  });
  return { status: res.status, contentType: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
}

async function status(admin: string, instance?: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${admin}/status/${instance ? `?instance=${instance}` : ''}`);
  return (await res.json()) as Record<string, unknown>;
}

let seq = 0;
const uid = () => `uid-${process.pid}-${++seq}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  for (const c of clients.splice(0)) c.ws.terminate();
});

// ---------------------------------------------------------------- message path

describe('gateway: publish and delivery', () => {
  let gw: Gateway;
  let admin: string;
  let client: string;
  beforeAll(async () => {
    gw = await startGateway();
    admin = gw.url('admin');
    client = gw.url('client');
  });
  afterAll(() => gw.close());

  it('delivers a published message to each subscribed socket once, with touched holding the node fingerprint', async () => {
    const a = await subscribed(client, ['PHID-USER-a', 'PHID-TASK-1']);
    const b = await subscribed(client, ['PHID-USER-b']);
    const c = await subscribed(client, ['PHID-USER-c']);
    const message = { type: 'notification', key: '17', subscribers: ['PHID-USER-a', 'PHID-TASK-1', 'PHID-USER-b'], uniqueID: uid() };
    const res = await publish(admin, message);
    expect(res).toEqual({ status: 200, contentType: 'application/json', body: { fingerprint: gw.node.fingerprint } });
    await a.waitFor(() => a.messages().length === 1, 'a message');
    await b.waitFor(() => b.messages().length === 1, 'b message');
    // The frame is the posted object as is, keys in order, with touched appended.
    const expected = JSON.stringify({ ...message, touched: [gw.node.fingerprint] });
    expect(a.texts).toContain(expected);
    expect(b.texts).toContain(expected);
    await a.roundTrip();
    await c.roundTrip();
    expect(a.messages()).toHaveLength(1);
    expect(c.messages()).toHaveLength(0);
  });

  it('appends its fingerprint to a touched list it is not in, keeping the key where it was', async () => {
    const a = await subscribed(client, ['PHID-T-1']);
    const message = { touched: ['peerFingerprint1'], subscribers: ['PHID-T-1'], uniqueID: uid(), type: 'message' };
    await publish(admin, message);
    await a.waitFor(() => a.messages().length === 1, 'message');
    expect(a.texts[a.texts.length - 1]).toBe(
      JSON.stringify({ touched: ['peerFingerprint1', gw.node.fingerprint], subscribers: ['PHID-T-1'], uniqueID: message.uniqueID, type: 'message' }),
    );
  });

  it('neither delivers nor records a message whose touched holds its own fingerprint, and still answers 200 with the receipt', async () => {
    const a = await subscribed(client, ['PHID-T-2']);
    const before = await status(admin);
    const res = await publish(admin, { subscribers: ['PHID-T-2'], uniqueID: uid(), touched: ['x', gw.node.fingerprint] });
    expect(res).toEqual({ status: 200, contentType: 'application/json', body: { fingerprint: gw.node.fingerprint } });
    await sleep(50);
    await a.roundTrip();
    expect(a.messages()).toHaveLength(0);
    const after = await status(admin);
    expect(after['history.size']).toBe(before['history.size']);
    expect(after['messages.out']).toBe(before['messages.out']);
    expect(after['messages.touchedDropped']).toBe((before['messages.touchedDropped'] as number) + 1);
    // And a replay does not bring it back.
    a.send('replay', { age: 60_000 });
    await a.roundTrip();
    expect(a.messages()).toHaveLength(0);
  });

  it('delivers a message published twice with the same uniqueID once, and keeps it once in history', async () => {
    const a = await subscribed(client, ['PHID-DUP']);
    const before = await status(admin);
    const message = { type: 'notification', subscribers: ['PHID-DUP'], uniqueID: uid() };
    expect((await publish(admin, message)).status).toBe(200);
    expect((await publish(admin, message)).status).toBe(200);
    await a.waitFor(() => a.messages().length === 1, 'message');
    await sleep(50);
    await a.roundTrip();
    expect(a.messages()).toHaveLength(1);
    const after = await status(admin);
    expect(after['history.size']).toBe((before['history.size'] as number) + 1);
    expect(after['messages.duplicatesDropped']).toBe((before['messages.duplicatesDropped'] as number) + 1);
    a.send('replay', {});
    await a.roundTrip();
    expect(a.messages()).toHaveLength(2); // the live copy and one replayed copy
  });

  it('counts messages.in and messages.out (deliveries) in /status/', async () => {
    const before = await status(admin);
    const a = await subscribed(client, ['PHID-CNT']);
    const b = await subscribed(client, ['PHID-CNT']);
    await publish(admin, { subscribers: ['PHID-CNT'], uniqueID: uid() });
    await a.waitFor(() => a.messages().length === 1, 'a');
    await b.waitFor(() => b.messages().length === 1, 'b');
    const after = await status(admin);
    expect((after['messages.in'] as number) - (before['messages.in'] as number)).toBe(1);
    expect((after['messages.out'] as number) - (before['messages.out'] as number)).toBe(2);
    expect((after['clients.total'] as number) - (before['clients.total'] as number)).toBe(2);
    expect(after['clients.active']).toBe(gw.clientConnections);
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'does not deliver a message addressed to %s to sockets that did not subscribe to it',
    async (phid) => {
      const other = await subscribed(client, ['PHID-USER-x']);
      const holder = await subscribed(client, [phid]);
      await publish(admin, { subscribers: [phid], uniqueID: uid() });
      await holder.waitFor(() => holder.messages().length === 1, 'holder');
      await other.roundTrip();
      expect(other.messages()).toHaveLength(0);
    },
  );

  it('stops delivering after unsubscribe, for those PHIDs only', async () => {
    const a = await subscribed(client, ['PHID-U-1', 'PHID-U-2']);
    a.send('unsubscribe', ['PHID-U-1']);
    await a.roundTrip();
    await publish(admin, { subscribers: ['PHID-U-1'], uniqueID: uid() });
    const second = { subscribers: ['PHID-U-2'], uniqueID: uid() };
    await publish(admin, second);
    await a.waitFor(() => a.messages().length === 1, 'message');
    expect(a.messages()[0].uniqueID).toBe(second.uniqueID);
  });

  it('answers ping with {"type":"pong"}', async () => {
    const a = await connect(client);
    a.send('ping');
    await a.waitFor(() => a.texts.length === 1, 'pong');
    expect(a.texts).toEqual(['{"type":"pong"}']);
  });

  it('replays kept messages newer than the age that match the subscriptions, oldest first', async () => {
    const old = { subscribers: ['PHID-R-1'], uniqueID: uid(), n: 1 };
    await publish(admin, old);
    await sleep(600);
    const recent = [
      { subscribers: ['PHID-R-1'], uniqueID: uid(), n: 2 },
      { subscribers: ['PHID-R-other'], uniqueID: uid(), n: 3 },
      { subscribers: ['PHID-R-2', 'PHID-R-1'], uniqueID: uid(), n: 4 },
    ];
    for (const m of recent) await publish(admin, m);
    const a = await subscribed(client, ['PHID-R-1', 'PHID-R-2']);
    expect(a.messages()).toHaveLength(0);
    a.send('replay', { age: 300 });
    await a.roundTrip();
    expect(a.messages().map((m) => m.n)).toEqual([2, 4]);
    // Default age (60 s): everything that matches, in order, touched included.
    a.send('replay', {});
    await a.roundTrip();
    expect(a.messages().map((m) => m.n)).toEqual([2, 4, 1, 2, 4]);
    expect(a.messages()[2]).toEqual({ ...old, touched: [gw.node.fingerprint] });
    // A socket without subscriptions gets nothing.
    const none = await connect(client);
    none.send('replay', { age: 60_000 });
    await none.roundTrip();
    expect(none.messages()).toHaveLength(0);
  });

  it('handles frames in order: a replay is answered before a later unsubscribe, replay or ping takes effect', async () => {
    const message = { subscribers: ['PHID-ORDER'], uniqueID: uid() };
    await publish(admin, message);
    const a = await subscribed(client, ['PHID-ORDER']);
    const pongsBefore = a.pongs();
    a.send('replay', { age: 60_000 });
    a.send('unsubscribe', ['PHID-ORDER']);
    a.send('replay', { age: 60_000 });
    a.send('ping');
    await a.waitFor(() => a.pongs() > pongsBefore, 'pong');
    // Exactly the first replay's message, then the pong; the second replay finds no subscription.
    expect(a.texts.slice(-2)).toEqual([JSON.stringify({ ...message, touched: [gw.node.fingerprint] }), '{"type":"pong"}']);
    expect(a.messages()).toHaveLength(1);
  });

  it('replays nothing older than the history window, and what is inside it', async () => {
    const short = await startGateway({ history: { maxAgeMs: 1_000 } });
    try {
      await publish(short.url('admin'), { subscribers: ['P'], uniqueID: uid(), n: 'old' });
      await sleep(1_100);
      // The positive control: a message inside the window, which the same replay must bring.
      await publish(short.url('admin'), { subscribers: ['P'], uniqueID: uid(), n: 'recent' });
      const a = await subscribed(short.url('client'), ['P']);
      expect(a.messages()).toHaveLength(0);
      a.send('replay', { age: 60_000 });
      await a.roundTrip();
      expect(a.messages().map((m) => m.n)).toEqual(['recent']);
      expect((await status(short.url('admin')))['history.size']).toBe(1);
    } finally {
      await short.close();
    }
  });
});

// ---------------------------------------------------------------- instances

describe('gateway: instances', () => {
  let gw: Gateway;
  let admin: string;
  let client: string;
  beforeAll(async () => {
    gw = await startGateway();
    admin = gw.url('admin');
    client = gw.url('client');
  });
  afterAll(() => gw.close());

  it.each([
    ['/~acme/', 'acme'],
    ['/ws/~acme/', 'acme'],
    ['/prefix/deeper/~acme', 'acme'],
    ['/~acme/?x=1', 'acme'],
    ['/~ac~me/', 'ac'],
    ['/', 'default'],
    ['/~/', 'default'],
    ['/ws/', 'default'],
  ])('a socket on %s belongs to instance %s', async (path, instance) => {
    const s = await subscribed(client + path, ['PHID-I']);
    const other = instance === 'default' ? 'acme' : 'default';
    const foreign = { subscribers: ['PHID-I'], uniqueID: uid(), to: other };
    const mine = { subscribers: ['PHID-I'], uniqueID: uid(), to: instance };
    await publish(admin, foreign, other === 'default' ? undefined : other);
    await publish(admin, mine, instance === 'default' ? '' : instance);
    await s.waitFor(() => s.messages().length === 1, 'message');
    await s.roundTrip();
    expect(s.messages().map((m) => m.to)).toEqual([instance]);
    expect((await status(admin, instance))['clients.active']).toBeGreaterThanOrEqual(1);
  });

  it('keeps history per instance: a socket replays only its own instance', async () => {
    const secret = { subscribers: ['PHID-SHARED'], uniqueID: uid(), secret: 'tenant-a' };
    await publish(admin, secret, 'tenant-a');
    const b = await subscribed(`${client}/~tenant-b/`, ['PHID-SHARED']);
    const d = await subscribed(client, ['PHID-SHARED']);
    const a = await subscribed(`${client}/~tenant-a/`, ['PHID-SHARED']);
    for (const s of [a, b, d]) s.send('replay', { age: 60_000 });
    for (const s of [a, b, d]) await s.roundTrip();
    expect(b.messages()).toHaveLength(0);
    expect(d.messages()).toHaveLength(0);
    expect(a.messages()).toHaveLength(1);
    expect((await status(admin, 'tenant-a'))['history.size']).toBe(1);
    expect((await status(admin, 'tenant-b'))['history.size']).toBe(0);
  });

  it('counts clients per instance in /status/', async () => {
    const before = await status(admin, 'counted');
    await connect(`${client}/~counted/`);
    const s = await connect(`${client}/x/~counted`);
    await s.roundTrip();
    const after = await status(admin, 'counted');
    expect(after['clients.active']).toBe((before['clients.active'] as number) + 2);
    expect(after['clients.total']).toBe((before['clients.total'] as number) + 2);
    s.ws.close();
    await s.closed;
    await sleep(50);
    const later = await status(admin, 'counted');
    expect(later['clients.active']).toBe((before['clients.active'] as number) + 1);
    expect(later['clients.total']).toBe((before['clients.total'] as number) + 2);
  });
});

describe('gateway: default limits agree', () => {
  it('accepts and answers one subscribe frame of 10,000 Phorge PHIDs with the default limits', async () => {
    const gw = await startGateway();
    try {
      const phids = Array.from({ length: 10_000 }, (_, i) => `PHID-USER-${String(i).padStart(20, '0')}`);
      expect(phids[0]).toHaveLength(30);
      const s = await connect(gw.url('client'));
      s.send('subscribe', phids);
      await s.roundTrip();
      await publish(gw.url('admin'), { subscribers: [phids[0]], uniqueID: uid() });
      await publish(gw.url('admin'), { subscribers: [phids[9_999]], uniqueID: uid() });
      await s.waitFor(() => s.messages().length === 2, 'the messages to the first and the last PHID');
      expect(gw.node.counters.rejected.size).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('logs a frame over limits.maxFrameBytes with the limit and the setting that raises it, and closes with 1009', async () => {
    const lines: { obj: Record<string, unknown>; msg?: string }[] = [];
    const capture: Logger = {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }),
      error: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }),
      child: () => capture,
    };
    const gw = await new Gateway({ config: gatewayConfig({ limits: { maxFrameBytes: 1_024, maxSubscriptionsPerSocket: 10 } }), logger: capture }).start();
    try {
      const s = await connect(gw.url('client'));
      s.send('subscribe', ['x'.repeat(2_000)]);
      expect((await s.closed).code).toBe(1009);
      await sleep(20);
      const line = lines.find((l) => l.obj.setting === 'limits.maxFrameBytes');
      expect(line?.obj).toMatchObject({ limit: 1_024, env: 'TIDINGS_LIMITS_MAX_FRAME_BYTES' });
      expect(line?.msg).toMatch(/raise limits\.maxFrameBytes/);
      expect(gw.node.counters.rejected.get('frame_too_large')).toBe(1);
    } finally {
      await gw.close();
    }
  });
});

describe('gateway: bounded instances', () => {
  let gw: Gateway;
  afterEach(() => gw.close());

  it('applies one instance rule on every transport: a raw socket path, the admin query and /status/', async () => {
    gw = await startGateway();
    const long = 'x'.repeat(129);
    await expect(connect(`${gw.url('client')}/~${long}/`)).rejects.toThrow(/400/);
    expect((await connect(`${gw.url('client')}/~${'x'.repeat(128)}/`)).ws.readyState).toBe(WebSocket.OPEN);
    const res = await publish(gw.url('admin'), { subscribers: ['P'] }, long);
    expect(res).toMatchObject({ status: 400, body: { error: 'invalid_instance' } });
    expect((await publish(gw.url('admin'), { subscribers: ['P'] }, 'a b')).status).toBe(400);
    expect((await fetch(`${gw.url('admin')}/status/?instance=${long}`)).status).toBe(400);
    expect((await status(gw.url('admin')))['messages.rejected']).toMatchObject({ invalid_instance: 4 });
  });

  it('caps live instances (limits.maxInstances) and lets one go once it has no sockets and no history', async () => {
    gw = await startGateway({ limits: { maxInstances: 2 }, history: { maxAgeMs: 300 } });
    const client = gw.url('client');
    const a = await connect(`${client}/~a/`);
    await connect(`${client}/~b/`);
    await connect(`${client}/~b/`); // a second socket of a live instance is no new instance
    await expect(connect(`${client}/~c/`)).rejects.toThrow(/503/);
    // Publishing keeps memory history: a new instance past the cap is refused too.
    expect(await publish(gw.url('admin'), { subscribers: ['P'] }, 'c')).toMatchObject({ status: 503, body: { error: 'instance_limit' } });
    expect((await publish(gw.url('admin'), { subscribers: ['P'] }, 'a')).status).toBe(200);
    expect((await status(gw.url('admin')))['messages.rejected']).toMatchObject({ instance_limit: 2 });

    // Instance a: its socket leaves, but its history keeps it live until that ages out.
    a.ws.close();
    await a.closed;
    await sleep(50);
    await expect(connect(`${client}/~c/`)).rejects.toThrow(/503/);
    await sleep(1_100); // history aged out (300 ms), and the registry looks again after a second
    const c = await connect(`${client}/~c/`);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    const st = await status(gw.url('admin'), 'a');
    expect(st['instances.live']).toBe(2);
    expect(st['clients.total']).toBe(0); // its entry went with it
  });
});

// ---------------------------------------------------------------- client port

describe('gateway: client port', () => {
  let gw: Gateway;
  let admin: string;
  let client: string;
  const MAX_FRAME = 2_048;
  const MAX_SUBS = 5;
  beforeAll(async () => {
    gw = await startGateway({ limits: { maxFrameBytes: MAX_FRAME, maxSubscriptionsPerSocket: MAX_SUBS } });
    admin = gw.url('admin');
    client = gw.url('client');
  });
  afterAll(() => gw.close());

  it.each(['/', '/~acme/', '/anything?x=1'])("answers plain HTTP on %s with 501 and 'HTTP/501 Use Websockets\\n'", async (path) => {
    const res = await fetch(client.replace(/^ws/, 'http') + path);
    expect(res.status).toBe(501);
    expect(await res.text()).toBe('HTTP/501 Use Websockets\n');
  });

  it('answers a POST on the client port with 501 too', async () => {
    const res = await fetch(client.replace(/^ws/, 'http') + '/', { method: 'POST', body: '{}' });
    expect(res.status).toBe(501);
  });

  it.each([
    ['text that is not JSON', 'hello'],
    ['null', 'null'],
    ['a number', '42'],
    ['an array', '[]'],
    ['a string', '"subscribe"'],
    ['an unknown command', '{"command":"dance","data":[]}'],
    ['a frame without command', '{"data":["PHID-G"]}'],
    ['subscribe without data', '{"command":"subscribe"}'],
    ['subscribe with null data', '{"command":"subscribe","data":null}'],
    ['subscribe with a string', '{"command":"subscribe","data":"PHID-G"}'],
    ['subscribe with numbers', '{"command":"subscribe","data":[1,2]}'],
    ['unsubscribe without data', '{"command":"unsubscribe"}'],
    ['replay with a bad age', '{"command":"replay","data":{"age":"soon"}}'],
    ['replay with an array', '{"command":"replay","data":[]}'],
    ['an empty frame', ''],
  ])('ignores %s and the socket keeps working', async (_what, text) => {
    const s = await connect(client);
    s.ws.send(text);
    s.send('subscribe', ['PHID-G']);
    await s.roundTrip();
    const message = { subscribers: ['PHID-G'], uniqueID: uid() };
    await publish(admin, message);
    await s.waitFor(() => s.messages().some((m) => m.uniqueID === message.uniqueID), 'message after garbage');
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('ignores a binary frame of garbage and keeps the socket', async () => {
    const s = await connect(client);
    s.ws.send(Buffer.from([0xff, 0x00, 0x13]), { binary: true });
    await s.roundTrip();
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('handles replay with missing or null data as the 60 s default (Aphlict would throw)', async () => {
    const message = { subscribers: ['PHID-RN'], uniqueID: uid() };
    await publish(admin, message);
    const s = await subscribed(client, ['PHID-RN']);
    s.ws.send('{"command":"replay"}');
    s.ws.send('{"command":"replay","data":null}');
    await s.roundTrip();
    expect(s.messages().map((m) => m.uniqueID)).toEqual([message.uniqueID, message.uniqueID]);
  });

  it('closes the socket with 1009 on a frame over limits.maxFrameBytes, and others are unaffected', async () => {
    const other = await subscribed(client, ['PHID-BIG']);
    const s = await connect(client);
    s.send('subscribe', ['x'.repeat(MAX_FRAME)]);
    const { code } = await s.closed;
    expect(code).toBe(1009);
    await publish(admin, { subscribers: ['PHID-BIG'], uniqueID: uid() });
    await other.waitFor(() => other.messages().length === 1, 'message to the other socket');
  });

  it('accepts a frame just under limits.maxFrameBytes', async () => {
    const s = await connect(client);
    const phid = 'y'.repeat(MAX_FRAME - JSON.stringify({ command: 'subscribe', data: [''] }).length);
    s.send('subscribe', [phid]);
    await s.roundTrip();
    await publish(admin, { subscribers: [phid], uniqueID: uid() });
    await s.waitFor(() => s.messages().length === 1, 'message');
  });

  it('caps subscriptions per socket: PHIDs past the cap are ignored and the socket keeps working', async () => {
    const s = await connect(client);
    const phids = Array.from({ length: MAX_SUBS + 3 }, (_, i) => `PHID-CAP-${i}`);
    s.send('subscribe', phids);
    await s.roundTrip();
    await publish(admin, { subscribers: [phids[MAX_SUBS]], uniqueID: uid(), n: 'over' });
    await publish(admin, { subscribers: [phids[MAX_SUBS - 1]], uniqueID: uid(), n: 'under' });
    await s.waitFor(() => s.messages().length === 1, 'message');
    await s.roundTrip();
    expect(s.messages().map((m) => m.n)).toEqual(['under']);
    const rejected = (await status(admin))['messages.rejected'] as Record<string, number>;
    expect(rejected.subscription_cap).toBeGreaterThanOrEqual(1);
    // After unsubscribing there is room again.
    s.send('unsubscribe', [phids[0]]);
    s.send('subscribe', [phids[MAX_SUBS]]);
    await s.roundTrip();
    await publish(admin, { subscribers: [phids[MAX_SUBS]], uniqueID: uid(), n: 'room' });
    await s.waitFor(() => s.messages().length === 2, 'second message');
  });
});

describe('gateway: connection limit', () => {
  it('refuses upgrades past limits.maxConnections with 503 and takes new ones once a socket left', async () => {
    const gw = await startGateway({ limits: { maxConnections: 2 } });
    try {
      const a = await connect(gw.url('client'));
      await connect(gw.url('client'));
      await expect(connect(gw.url('client'))).rejects.toThrow(/503/);
      const rejected = (await status(gw.url('admin')))['messages.rejected'] as Record<string, number>;
      expect(rejected.connection_limit).toBe(1);
      a.ws.close();
      await a.closed;
      await sleep(50);
      const c = await connect(gw.url('client'));
      await c.roundTrip();
    } finally {
      await gw.close();
    }
  });
});

// ---------------------------------------------------------------- slow readers

describe('gateway: slow readers', () => {
  it('closes a socket whose unsent bytes pass limits.maxBufferedBytes, counts it, and others keep receiving', async () => {
    const gw = await startGateway({ limits: { maxBufferedBytes: 64 * 1024, maxBodyBytes: 48 * 1024 } });
    try {
      const admin = gw.url('admin');
      const fast = await subscribed(gw.url('client'), ['PHID-SLOW']);
      const slow = await subscribed(gw.url('client'), ['PHID-SLOW']);
      // Stop reading: the kernel buffers fill, then the server's unsent bytes grow.
      (slow.ws as unknown as { _socket: Socket })._socket.pause();
      const pad = 'p'.repeat(32 * 1024);
      let sent = 0;
      const deadline = Date.now() + 20_000;
      while (gw.node.counters.slowReaderCloses === 0 && sent < 1_000 && Date.now() < deadline) {
        await publish(admin, { subscribers: ['PHID-SLOW'], uniqueID: uid(), pad });
        sent++;
      }
      expect(gw.node.counters.slowReaderCloses).toBe(1);
      expect((await status(admin))['clients.slowReaderCloses']).toBe(1);
      await fast.waitFor(() => fast.messages().length === sent, `${sent} messages on the fast socket`, 10_000);
      // The slow socket is gone from the node; the fast one is still served.
      expect(gw.clientConnections).toBe(1);
      (slow.ws as unknown as { _socket: Socket })._socket.resume();
      const { code } = await slow.closed;
      expect(code).toBe(1006); // terminated: no close frame behind the backlog
      expect(slow.messages().length).toBeLessThan(sent);
      await publish(admin, { subscribers: ['PHID-SLOW'], uniqueID: uid(), pad: 'after' });
      await fast.waitFor(() => fast.messages().length === sent + 1, 'message after the close');
    } finally {
      await gw.close();
    }
  });
});

// ---------------------------------------------------------------- TLS

describe('gateway: TLS', () => {
  let dir: string;
  let gw: Gateway;
  let rootCa: Buffer;
  let selfSigned: Buffer;

  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tidings-tls-'));
    writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n');
    // Admin: a self-signed certificate.
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'self.key', '-out', 'self.pem', '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1');
    // Client: root -> intermediate -> leaf; the server sends the intermediate from ssl.chain.
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-days', '2',
      '-subj', '/CN=Tidings Test Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Tidings Test Intermediate');
    openssl('x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.pem',
      '-days', '2', '-extfile', 'ca.ext');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1');
    openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'leaf.pem',
      '-days', '2', '-extfile', 'leaf.ext');
    const { readFileSync } = await import('node:fs');
    rootCa = readFileSync(join(dir, 'root.pem'));
    selfSigned = readFileSync(join(dir, 'self.pem'));
    const config = gatewayConfig({}, [
      { type: 'client', port: 0, listen: '127.0.0.1', 'ssl.key': join(dir, 'leaf.key'), 'ssl.cert': join(dir, 'leaf.pem'), 'ssl.chain': join(dir, 'int.pem') },
      { type: 'admin', port: 0, listen: '127.0.0.1', 'ssl.key': join(dir, 'self.key'), 'ssl.cert': join(dir, 'self.pem'), 'ssl.chain': null },
    ]);
    gw = await new Gateway({ config, logger: silentLogger }).start();
  });

  afterAll(async () => {
    await gw?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function httpsRequest(url: string, ca: Buffer, method = 'GET', body?: string) {
    return new Promise<{ status: number; text: string; contentType?: string }>((resolve, reject) => {
      const req = https.request(url, { method, ca, agent: false }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, contentType: res.headers['content-type'] }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('lists https and wss urls', () => {
    expect(gw.url('admin')).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(gw.url('client')).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
  });

  it('publishes over https and delivers over wss, the intermediate sent from ssl.chain', async () => {
    const s = await connect(`${gw.url('client')}/~secure/`, { ca: rootCa });
    s.send('subscribe', ['PHID-TLS']);
    await s.roundTrip();
    const message = { subscribers: ['PHID-TLS'], uniqueID: uid() };
    const res = await httpsRequest(`${gw.url('admin')}/?instance=secure`, selfSigned, 'POST', JSON.stringify(message));
    expect(res).toEqual({ status: 200, text: JSON.stringify({ fingerprint: gw.node.fingerprint }), contentType: 'application/json' });
    await s.waitFor(() => s.messages().length === 1, 'message over wss');
    const st = await httpsRequest(`${gw.url('admin')}/status/?instance=secure`, selfSigned);
    expect(JSON.parse(st.text)).toMatchObject({ instance: 'secure', 'clients.active': 1, 'history.size': 1, version: 7 });
  });

  it('answers plain HTTPS on the client port with 501', async () => {
    const res = await httpsRequest(gw.url('client').replace(/^wss/, 'https') + '/', rootCa);
    expect(res.status).toBe(501);
    expect(res.text).toBe('HTTP/501 Use Websockets\n');
  });

  it('refuses a client that does not trust the certificate', async () => {
    await expect(httpsRequest(`${gw.url('admin')}/status/`, rootCa)).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});

// ---------------------------------------------------------------- lifecycle

describe('gateway: close', () => {
  it('closes client sockets with 1001, stops listening, and is idempotent', async () => {
    const gw = await startGateway();
    const a = await connect(gw.url('client'));
    const b = await connect(`${gw.url('client')}/~acme/`);
    const first = gw.close();
    expect(gw.close()).toBe(first);
    const [ca, cb] = await Promise.all([a.closed, b.closed]);
    expect(ca.code).toBe(1001);
    expect(cb.code).toBe(1001);
    await first;
    await expect(fetch(`${gw.url('admin')}/status/`)).rejects.toThrow();
    await expect(connect(gw.url('client'))).rejects.toThrow();
  });

  it('refuses start() twice', async () => {
    const gw = await startGateway();
    try {
      await expect(gw.start()).rejects.toThrow(/start\(\) in state running/);
    } finally {
      await gw.close();
    }
  });

  it('fails to start with the error of a port already in use', async () => {
    const gw = await startGateway();
    const port = Number(new URL(gw.url('admin')).port);
    const clash = new Gateway({
      config: gatewayConfig({}, [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port, listen: '127.0.0.1' },
      ]),
      logger: silentLogger,
    });
    try {
      await expect(clash.start()).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await clash.close();
      await gw.close();
    }
  });
});
