/**
 * Black-box: the admin port's Aphlict-compatible behaviour. Runs against
 * TIDINGS_TEST_ADMIN_URL/TIDINGS_TEST_CLIENT_URL (e.g. a real Aphlict) or a spawned
 * Tidings gateway. Only what Aphlict itself does is checked here; Tidings' stricter
 * answers (JSON error bodies, 400 for arrays and bad subscribers, 413) live in the
 * gateway's own specs.
 */
import { openTarget, RUN, FINGERPRINT_PATTERN, type Target } from './target';

let target: Target;

beforeAll(async () => {
  target = await openTarget();
});

afterAll(async () => {
  await target?.stop();
});

async function request(method: string, path: string, body?: string) {
  const res = await fetch(target.adminUrl + path, { method, body, redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), text };
}

let n = 0;
const message = (extra: Record<string, unknown> = {}) => ({
  type: 'notification',
  key: String(++n),
  subscribers: [`PHID-USER-${RUN}-${n}`],
  uniqueID: `${RUN}-admin-${n}`,
  ...extra,
});

describe('admin protocol: publish', () => {
  it('answers a JSON object with 200, Content-Type application/json and {"fingerprint": 16 characters}', async () => {
    const res = await request('POST', '/', JSON.stringify(message()));
    expect(res.status).toBe(200);
    expect(res.contentType).toBe('application/json');
    const receipt = JSON.parse(res.text);
    expect(Object.keys(receipt)).toEqual(['fingerprint']);
    expect(receipt.fingerprint).toMatch(FINGERPRINT_PATTERN);
  });

  it('answers every publish with the same fingerprint, on any instance', async () => {
    const a = JSON.parse((await request('POST', '/', JSON.stringify(message()))).text).fingerprint;
    const b = JSON.parse((await request('POST', `/?instance=${RUN}-x`, JSON.stringify(message()))).text).fingerprint;
    expect(a).toBe(b);
  });

  it('answers 200 with the receipt to a message its own fingerprint already touched', async () => {
    const fp = JSON.parse((await request('POST', '/', JSON.stringify(message()))).text).fingerprint;
    const res = await request('POST', '/', JSON.stringify(message({ touched: ['someOtherNode234', fp] })));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ fingerprint: fp });
  });

  it('accepts a message with no subscribers to reach', async () => {
    expect((await request('POST', '/', JSON.stringify(message({ subscribers: [] })))).status).toBe(200);
  });

  it.each([
    ['text that is not JSON', 'this is not json'],
    ['truncated JSON', '{"subscribers": ["PHID-X"'],
    ['an empty body', ''],
  ])('answers 400 to %s', async (_what, body) => {
    expect((await request('POST', '/', body)).status).toBe(400);
  });

  it('keeps answering after bad bodies', async () => {
    expect((await request('POST', '/', JSON.stringify(message()))).status).toBe(200);
  });
});

describe('admin protocol: routes', () => {
  it.each(['GET', 'PUT', 'DELETE'])('answers 405 to %s /', async (method) => {
    expect((await request(method, '/')).status).toBe(405);
  });

  it.each([
    ['GET', '/status'],
    ['GET', '/STATUS/'],
    ['GET', '/status/extra'],
    ['GET', '/nothing/here'],
    ['POST', '/nothing'],
    ['POST', '/index.php'],
  ])('answers 404 to %s %s', async (method, path) => {
    expect((await request(method, path, method === 'POST' ? JSON.stringify(message()) : undefined)).status).toBe(404);
  });
});

describe('admin protocol: /status/', () => {
  const KEYS = ['instance', 'uptime', 'clients.active', 'clients.total', 'messages.in', 'messages.out', 'version', 'history.size', 'history.age'];

  it("answers 200 application/json with Aphlict's keys, in Aphlict's order, and version 7", async () => {
    const res = await request('GET', '/status/');
    expect(res.status).toBe(200);
    expect(res.contentType).toBe('application/json');
    const s = JSON.parse(res.text);
    expect(Object.keys(s).slice(0, KEYS.length)).toEqual(KEYS);
    expect(s.instance).toBe('default');
    expect(s.version).toBe(7);
    for (const k of ['uptime', 'clients.active', 'clients.total', 'messages.in', 'messages.out', 'history.size']) {
      expect(Number.isInteger(s[k])).toBe(true);
      expect(s[k]).toBeGreaterThanOrEqual(0);
    }
    expect(s['history.age'] === null || typeof s['history.age'] === 'number').toBe(true);
  });

  it('reports the instance named by ?instance=, and default for an empty one', async () => {
    expect(JSON.parse((await request('GET', `/status/?instance=${RUN}-st`)).text).instance).toBe(`${RUN}-st`);
    expect(JSON.parse((await request('GET', '/status/?instance=')).text).instance).toBe('default');
  });

  it('counts a publish in messages.in', async () => {
    const before = JSON.parse((await request('GET', '/status/')).text);
    await request('POST', '/', JSON.stringify(message()));
    const after = JSON.parse((await request('GET', '/status/')).text);
    expect(after['messages.in'] - before['messages.in']).toBe(1);
    expect(after.uptime).toBeGreaterThanOrEqual(before.uptime);
  });

  it('has a number history.age once messages are kept', async () => {
    await request('POST', '/', JSON.stringify(message()));
    const s = JSON.parse((await request('GET', '/status/')).text);
    expect(s['history.size']).toBeGreaterThan(0);
    expect(typeof s['history.age']).toBe('number');
  });
});
