/**
 * The admin port over real HTTP: a Gateway in this process on 127.0.0.1 port 0, driven
 * with fetch and raw node:http requests.
 */
import http from 'node:http';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { Gateway } from '../gateway';

const MAX_BODY = 1024;

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    limits: { maxBodyBytes: MAX_BODY },
    ...extra,
  });
}

let gateway: Gateway;
let admin: string;

beforeAll(async () => {
  gateway = await new Gateway({ config: config(), logger: silentLogger }).start();
  admin = gateway.url('admin');
});

afterAll(async () => {
  await gateway.close();
});

async function request(method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(admin + path, { method, body, headers });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, text, json };
}

const publish = (body: string, query = '') => request('POST', `/${query}`, body, { 'Content-Type': 'application/json' });

describe('admin: publish', () => {
  it('answers 200 with the receipt {"fingerprint"} and Content-Type exactly application/json', async () => {
    const res = await publish(JSON.stringify({ type: 'notification', key: '1', subscribers: ['PHID-USER-1'], uniqueID: 'a-1' }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.text).toBe(JSON.stringify({ fingerprint: gateway.node.fingerprint }));
    expect(gateway.node.fingerprint).toMatch(/^[2-9a-hjkmnp-zA-HJ-NP-Z]{16}$/);
  });

  it('accepts a body without a Content-Type, as Aphlict does', async () => {
    const res = await request('POST', '/', JSON.stringify({ subscribers: ['x'] }));
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ fingerprint: gateway.node.fingerprint });
  });

  it('answers 200 with the receipt when its own fingerprint is in touched, and keeps it out of history', async () => {
    const before = await gateway.status.report('touchedtest');
    const res = await publish(
      JSON.stringify({ subscribers: ['P'], uniqueID: 't-1', touched: ['peerAAAAAAAAAAAA', gateway.node.fingerprint] }),
      '?instance=touchedtest',
    );
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ fingerprint: gateway.node.fingerprint });
    const after = await gateway.status.report('touchedtest');
    expect(after['history.size']).toBe(0);
    expect(after['messages.touchedDropped']).toBe((before['messages.touchedDropped'] as number) + 1);
    // Not marked seen either: the same id without our fingerprint is still new.
    const again = await publish(JSON.stringify({ subscribers: ['P'], uniqueID: 't-1' }), '?instance=touchedtest');
    expect(again.status).toBe(200);
    expect((await gateway.status.report('touchedtest'))['history.size']).toBe(1);
  });

  it.each([
    ['not JSON', '{"subscribers": [', 'invalid_json'],
    ['empty', '', 'invalid_json'],
    ['a JSON array', '[{"subscribers":["P"]}]', 'not_an_object'],
    ['null', 'null', 'not_an_object'],
    ['a number', '42', 'not_an_object'],
    ['a string', '"hello"', 'not_an_object'],
    ['an object without subscribers', '{"type":"notification"}', 'invalid_subscribers'],
    ['subscribers that is not an array', '{"subscribers":"PHID-USER-1"}', 'invalid_subscribers'],
    ['subscribers with a non-string', '{"subscribers":["P",1]}', 'invalid_subscribers'],
    ['touched that is not a list of strings', '{"subscribers":["P"],"touched":"x"}', 'invalid_touched'],
  ])('answers 400 with a JSON reason to a body that is %s', async (_what, body, code) => {
    const res = await publish(body, '?instance=badinput');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.json).toEqual({ error: code, message: expect.any(String) });
    expect((res.json as { message: string }).message.length).toBeGreaterThan(0);
  });

  it('records nothing for refused bodies and counts them by reason', async () => {
    const status = await gateway.status.report('badinput');
    expect(status['history.size']).toBe(0);
    const rejected = status['messages.rejected'] as Record<string, number>;
    expect(rejected.invalid_json).toBeGreaterThanOrEqual(2);
    expect(rejected.not_an_object).toBeGreaterThanOrEqual(4);
    expect(rejected.invalid_subscribers).toBeGreaterThanOrEqual(3);
  });

  it('answers 413 with a JSON reason to a body over limits.maxBodyBytes', async () => {
    const res = await publish(JSON.stringify({ subscribers: ['P'], pad: 'x'.repeat(MAX_BODY) }));
    expect(res.status).toBe(413);
    expect(res.json).toEqual({ error: 'body_too_large', message: expect.stringContaining(String(MAX_BODY)) });
  });

  it('accepts a body of exactly limits.maxBodyBytes', async () => {
    const base = JSON.stringify({ subscribers: ['P'], pad: '' });
    const body = JSON.stringify({ subscribers: ['P'], pad: 'x'.repeat(MAX_BODY - base.length) });
    expect(Buffer.byteLength(body)).toBe(MAX_BODY);
    expect((await publish(body)).status).toBe(200);
  });

  it.each([
    ['a Content-Length over the limit', { 'Content-Length': String(100 * 1024 * 1024) }],
    ['a chunked body that grows past the limit', { 'Transfer-Encoding': 'chunked' }],
  ])('answers 413 to %s without waiting for the rest of the body', async (_what, headers) => {
    const url = new URL(admin);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: '/', headers, agent: false }, (r) => {
        let body = '';
        r.on('data', (d) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      // Send a little over the limit and never end the request: the answer must not need the rest.
      req.write('{"subscribers":["P"],"pad":"' + 'x'.repeat(MAX_BODY * 2));
      setTimeout(() => reject(new Error('no answer within 3 s')), 3_000).unref();
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'body_too_large' });
  });

  it('keeps working after refused bodies', async () => {
    expect((await publish(JSON.stringify({ subscribers: ['P'] }))).status).toBe(200);
  });
});

describe('admin: routes', () => {
  it.each(['GET', 'PUT', 'DELETE', 'PATCH'])('answers 405 to %s /', async (method) => {
    const res = await request(method, '/');
    expect(res.status).toBe(405);
  });

  it('answers 405 to GET / with a query string', async () => {
    expect((await request('GET', '/?instance=acme')).status).toBe(405);
  });

  it.each([
    ['GET', '/status'],
    ['GET', '/nothing'],
    ['POST', '/nothing'],
    ['POST', '/status'],
    ['GET', '/status/x'],
    ['GET', '/STATUS/'],
    ['POST', '//'],
    ['GET', '/index.html'],
  ])('answers 404 with a JSON reason to %s %s', async (method, path) => {
    const res = await request(method, path, method === 'POST' ? '{"subscribers":["P"]}' : undefined);
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ error: 'not_found', message: expect.any(String) });
  });
});

describe('admin: /status/', () => {
  it("has every Aphlict key with Aphlict's types, Content-Type exactly application/json", async () => {
    const res = await request('GET', '/status/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const s = res.json as Record<string, unknown>;
    const aphlictKeys = [
      'instance',
      'uptime',
      'clients.active',
      'clients.total',
      'messages.in',
      'messages.out',
      'version',
      'history.size',
      'history.age',
    ];
    // Aphlict's keys come first and in Aphlict's order.
    expect(Object.keys(s).slice(0, aphlictKeys.length)).toEqual(aphlictKeys);
    expect(s.instance).toBe('default');
    expect(s.version).toBe(7);
    expect(typeof s.uptime).toBe('number');
    expect(s.uptime).toBeGreaterThanOrEqual(0);
    for (const k of ['clients.active', 'clients.total', 'messages.in', 'messages.out', 'history.size']) {
      expect(Number.isInteger(s[k])).toBe(true);
    }
    expect(s['messages.in']).toBeGreaterThan(0);
    expect(s['history.size']).toBeGreaterThan(0);
    expect(typeof s['history.age']).toBe('number');
    expect(s['clients.slowReaderCloses']).toBe(0);
  });

  it('reports the instance asked for, with null history.age when it has no history', async () => {
    const res = await request('GET', '/status/?instance=empty-one');
    const s = res.json as Record<string, unknown>;
    expect(s.instance).toBe('empty-one');
    expect(s['history.size']).toBe(0);
    expect(s['history.age']).toBeNull();
    expect(s['clients.total']).toBe(0);
  });

  it('answers any method on /status/, as Aphlict does', async () => {
    const res = await request('POST', '/status/', 'ignored');
    expect(res.status).toBe(200);
    expect((res.json as Record<string, unknown>).version).toBe(7);
  });

  it('counts history per instance and messages.in for the node', async () => {
    const before = (await request('GET', '/status/?instance=counted')).json as Record<string, number>;
    for (let i = 0; i < 3; i++) await publish(JSON.stringify({ subscribers: ['P'], uniqueID: `c-${i}` }), '?instance=counted');
    const after = (await request('GET', '/status/?instance=counted')).json as Record<string, number>;
    expect(after['messages.in'] - before['messages.in']).toBe(3);
    expect(after['history.size']).toBe(3);
    expect(after['history.age']).toBeGreaterThanOrEqual(0);
  });
});
