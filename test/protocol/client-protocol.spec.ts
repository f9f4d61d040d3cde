/**
 * Black-box: the client port's Aphlict-compatible behaviour and delivery end to end.
 * Runs against TIDINGS_TEST_ADMIN_URL/TIDINGS_TEST_CLIENT_URL (e.g. a real Aphlict) or a
 * spawned Tidings gateway. Aphlict's documented defects (null/42/[] frames making a
 * socket deaf, `constructor` PHIDs, replay across instances, bounced messages in
 * history) are tested only against Tidings, in the gateway's own specs.
 */
import { connectSocket, messagesOf, sleep, type TestSocket } from '@tidings/testing';
import { openTarget, RUN, type Target } from './target';

let target: Target;
let fingerprint: string;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  target = await openTarget();
  fingerprint = (await publish({ subscribers: [] })).fingerprint as string;
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.ws.terminate();
});

afterAll(async () => {
  await target?.stop();
});

async function publish(body: unknown, instance?: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${target.adminUrl}/${instance === undefined ? '' : `?instance=${encodeURIComponent(instance)}`}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

async function status(instance: string): Promise<Record<string, number>> {
  return (await (await fetch(`${target.adminUrl}/status/?instance=${encodeURIComponent(instance)}`)).json()) as Record<string, number>;
}

async function open(path = '/'): Promise<TestSocket> {
  const s = await connectSocket(target.clientUrl + path);
  sockets.push(s);
  return s;
}

async function subscribed(phids: string[], path = '/'): Promise<TestSocket> {
  const s = await open(path);
  s.send('subscribe', phids);
  await s.roundTrip();
  return s;
}

let n = 0;
/** A fresh PHID for this run. */
const phid = (what = 'USER') => `PHID-${what}-${RUN}-${++n}`;
const uid = () => `${RUN}-client-${++n}`;

/** Waits long enough for a message that should not come to have come. */
async function settle(s: TestSocket): Promise<void> {
  await sleep(100);
  await s.roundTrip();
}

describe('client protocol: plain HTTP', () => {
  it.each(['/', '/~acme/', '/some/path?x=1'])("answers GET %s with 501 and the body 'HTTP/501 Use Websockets\\n'", async (path) => {
    const res = await fetch(target.clientHttpUrl + path);
    expect(res.status).toBe(501);
    expect(await res.text()).toBe('HTTP/501 Use Websockets\n');
  });
});

describe('client protocol: delivery', () => {
  it('sends the published object as is, with touched holding the fingerprint, to a subscribed socket', async () => {
    const p = phid();
    const s = await subscribed([p]);
    const message = { type: 'notification', key: '123', subscribers: [p], uniqueID: uid(), nested: { a: [1, 'ü', null] } };
    await publish(message);
    await s.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the message');
    expect(messagesOf(s.received)[0]).toEqual({ ...message, touched: [fingerprint] });
    // Byte for byte: keys in posted order, touched last.
    expect(JSON.stringify(messagesOf(s.received)[0])).toBe(JSON.stringify({ ...message, touched: [fingerprint] }));
  });

  it('appends its fingerprint to an existing touched list', async () => {
    const p = phid();
    const s = await subscribed([p]);
    await publish({ type: 'message', touched: ['peerNodeABCDEFGH'], subscribers: [p], uniqueID: uid() });
    await s.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the message');
    expect(messagesOf(s.received)[0].touched).toEqual(['peerNodeABCDEFGH', fingerprint]);
  });

  it('sends a message once to a socket subscribed to several of its PHIDs, and to every subscribed socket', async () => {
    const [p1, p2, p3] = [phid(), phid(), phid()];
    const a = await subscribed([p1, p2]);
    const b = await subscribed([p3]);
    const c = await subscribed([phid()]);
    await publish({ subscribers: [p1, p2, p3], uniqueID: uid() });
    await a.waitFor((r) => messagesOf(r).length === 1, 5_000, 'a');
    await b.waitFor((r) => messagesOf(r).length === 1, 5_000, 'b');
    await settle(a);
    await c.roundTrip();
    expect(messagesOf(a.received)).toHaveLength(1);
    expect(messagesOf(c.received)).toHaveLength(0);
  });

  it('does not deliver a message its own fingerprint already touched', async () => {
    const p = phid();
    const s = await subscribed([p]);
    await publish({ subscribers: [p], uniqueID: uid(), touched: [fingerprint] });
    await settle(s);
    expect(messagesOf(s.received)).toHaveLength(0);
  });

  it('stops delivering a PHID after unsubscribe and keeps the others', async () => {
    const [p1, p2] = [phid(), phid()];
    const s = await subscribed([p1, p2]);
    s.send('unsubscribe', [p1]);
    await s.roundTrip();
    await publish({ subscribers: [p1], uniqueID: uid(), n: 1 });
    await publish({ subscribers: [p2], uniqueID: uid(), n: 2 });
    await s.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the message');
    await settle(s);
    expect(messagesOf(s.received).map((m) => m.n)).toEqual([2]);
  });

  it('answers ping with {"type":"pong"}', async () => {
    const s = await open();
    s.send('ping');
    await s.waitFor((r) => r.length === 1, 5_000, 'pong');
    expect(s.received).toEqual([{ type: 'pong' }]);
  });

  it('counts deliveries in messages.out and the publish in messages.in', async () => {
    const p = phid();
    await subscribed([p]);
    const b = await subscribed([p]);
    const before = await status('default');
    await publish({ subscribers: [p], uniqueID: uid() });
    await b.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the message');
    await sleep(50);
    const after = await status('default');
    expect(after['messages.in'] - before['messages.in']).toBe(1);
    expect(after['messages.out'] - before['messages.out']).toBe(2);
  });
});

describe('client protocol: replay', () => {
  it('replays kept messages newer than the age that match the subscriptions, oldest first', async () => {
    const [p1, p2] = [phid('TASK'), phid('TASK')];
    await publish({ subscribers: [p1], uniqueID: uid(), n: 1 });
    await sleep(700);
    await publish({ subscribers: [p1], uniqueID: uid(), n: 2 });
    await publish({ subscribers: [phid('TASK')], uniqueID: uid(), n: 3 });
    await publish({ subscribers: [p2, p1], uniqueID: uid(), n: 4 });
    const s = await subscribed([p1, p2]);
    s.send('replay', { age: 400 });
    await s.roundTrip();
    expect(messagesOf(s.received).map((m) => m.n)).toEqual([2, 4]);
    s.send('replay', { age: 60_000 });
    await s.roundTrip();
    expect(messagesOf(s.received).map((m) => m.n)).toEqual([2, 4, 1, 2, 4]);
    expect(messagesOf(s.received)[2].touched).toEqual([fingerprint]);
  });

  it('replays the last 60 s when data has no age, or age 0 (`age || 60000`)', async () => {
    const p = phid('TASK');
    await publish({ subscribers: [p], uniqueID: uid() });
    const s = await subscribed([p]);
    s.send('replay', {});
    s.send('replay', { age: 0 });
    await s.roundTrip();
    expect(messagesOf(s.received)).toHaveLength(2);
  });

  it('replays nothing to a socket without subscriptions', async () => {
    await publish({ subscribers: [phid('TASK')], uniqueID: uid() });
    const s = await open();
    s.send('replay', { age: 60_000 });
    await s.roundTrip();
    expect(messagesOf(s.received)).toHaveLength(0);
  });
});

describe('client protocol: instances', () => {
  it.each([
    ['/~INST/', 'INST'],
    ['/ws/~INST/', 'INST'],
    ['/prefix/~INST', 'INST'],
    ['/~INST~tail/', 'INST'],
  ])('a socket on %s receives ?instance=%s messages and no default ones', async (pathTemplate, instTemplate) => {
    const instance = `${RUN}i${++n}`;
    const path = pathTemplate.replace('INST', instance);
    expect(instTemplate.replace('INST', instance)).toBe(instance);
    const p = phid();
    const tenant = await subscribed([p], path);
    const dflt = await subscribed([p], '/');
    await publish({ subscribers: [p], uniqueID: uid(), to: 'tenant' }, instance);
    await publish({ subscribers: [p], uniqueID: uid(), to: 'default' });
    await tenant.waitFor((r) => messagesOf(r).length === 1, 5_000, 'tenant message');
    await dflt.waitFor((r) => messagesOf(r).length === 1, 5_000, 'default message');
    await settle(tenant);
    await settle(dflt);
    expect(messagesOf(tenant.received).map((m) => m.to)).toEqual(['tenant']);
    expect(messagesOf(dflt.received).map((m) => m.to)).toEqual(['default']);
  });

  it.each(['/', '/~/', '/ws/', '/ws/path/'])('a socket on %s belongs to the default instance', async (path) => {
    const p = phid();
    const s = await subscribed([p], path);
    await publish({ subscribers: [p], uniqueID: uid() }, '');
    await s.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the message');
  });

  it('counts clients.active and clients.total per instance', async () => {
    const instance = `${RUN}count`;
    const a = await open(`/~${instance}/`);
    await open(`/ws/~${instance}/`);
    await a.roundTrip();
    expect(await status(instance)).toMatchObject({ instance, 'clients.active': 2, 'clients.total': 2 });
    await a.close();
    await sleep(100);
    expect(await status(instance)).toMatchObject({ 'clients.active': 1, 'clients.total': 2 });
  });
});

describe('client protocol: garbage is ignored', () => {
  it.each([
    ['text that is not JSON', 'definitely not json'],
    ['an unknown command', '{"command":"dance","data":[]}'],
    ['a JSON object without command', '{"data":[1,2,3]}'],
    ['truncated JSON', '{"command":"subscribe","data":['],
    // JSON that is not an object: Aphlict reads `.command` of it and finds none. (`null`
    // throws there and leaves the socket deaf: a defect, tested only against Tidings.)
    ['a number', '42'],
    ['an array', '[]'],
    ['a string', '"subscribe"'],
    ['true', 'true'],
  ])('ignores %s and the socket keeps working', async (_what, text) => {
    const p = phid();
    const s = await open();
    s.sendRaw(text);
    s.send('subscribe', [p]);
    await s.roundTrip();
    await publish({ subscribers: [p], uniqueID: uid() });
    await s.waitFor((r) => messagesOf(r).length === 1, 5_000, 'message after garbage');
  });
});
