/**
 * The admin port with auth.adminTokens, against a real gateway process: every route but the
 * health probes needs a token, as a bearer header or as the first path segment (the form
 * Phorge sends with `"path": "/TOKEN"`); several tokens allow rotation; a refusal is a 401
 * that reads no body; addresses in auth.adminAllow pass without one; publishes are rate
 * limited per token or address. No token ever reaches the logs.
 */
import { request } from 'node:http';
import { connectSocket, messagesOf, spawnGateway, type GatewayProcess, type TestSocket } from '@tidings/testing';

const TOKEN_A = 'tok-A-0123456789abcdef';
const TOKEN_B = 'tok-B-fedcba9876543210';
const WRONG = 'tok-A-0123456789abcdeX';

const gateways: GatewayProcess[] = [];
const sockets: TestSocket[] = [];
afterAll(async () => {
  for (const s of sockets) s.ws.terminate();
  await Promise.all(gateways.map((g) => g.stop('SIGINT')));
});

async function gateway(config: Record<string, unknown>): Promise<GatewayProcess> {
  const g = await spawnGateway({ config });
  gateways.push(g);
  return g;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request; `bodyBytes` sends that much (or only declares it with `declareOnly`). */
function call(g: GatewayProcess, method: string, path: string, options: { headers?: Record<string, string>; body?: string; declareOnly?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers };
    if (options.declareOnly !== undefined) headers['Content-Length'] = options.declareOnly;
    const req = request({ host: '127.0.0.1', port: g.adminPort, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (options.declareOnly !== undefined) req.flushHeaders(); // headers only: the body never comes
    else req.end(options.body);
  });
}

const publishBody = (key: string, phid = 'PHID-USER-admin') => JSON.stringify({ subscribers: [phid], key });

describe('admin port with tokens', () => {
  let g: GatewayProcess;
  let socket: TestSocket;
  beforeAll(async () => {
    g = await gateway({ auth: { adminTokens: [TOKEN_A, TOKEN_B] } });
    socket = await connectSocket(`${g.clientUrl}/~acme/`);
    sockets.push(socket);
    socket.send('subscribe', ['PHID-USER-admin']);
    await socket.roundTrip();
  });

  it('refuses a publish without a token with 401, WWW-Authenticate: Bearer and the JSON error, before reading the body', async () => {
    // Only the headers go: a server that waited for the declared megabyte would never answer.
    const refused = await call(g, 'POST', '/?instance=acme', { declareOnly: 1_000_000 });
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    expect(JSON.parse(refused.body)).toEqual({ error: 'unauthorized', message: expect.stringMatching(/token/) });
    expect((await call(g, 'POST', '/', { body: publishBody('no'), headers: { Authorization: `Bearer ${WRONG}` } })).status).toBe(401);
    expect((await call(g, 'GET', '/status/')).status).toBe(401);
    expect((await call(g, 'GET', '/metrics')).status).toBe(401);
  });

  it('accepts either token as a bearer header (rotation) and as the first path segment (Phorge)', async () => {
    for (const [path, headers] of [
      ['/?instance=acme', { Authorization: `Bearer ${TOKEN_A}` }],
      ['/?instance=acme', { Authorization: `Bearer ${TOKEN_B}` }],
      [`/${TOKEN_A}/?instance=acme`, {}],
      [`/${TOKEN_B}?instance=acme`, {}],
    ] as const) {
      const res = await call(g, 'POST', path, { body: publishBody(path + JSON.stringify(headers)), headers });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ fingerprint: g.fingerprint });
    }
    await socket.waitFor((r) => messagesOf(r).length === 4, 5_000, 'the four publishes');
    expect((await call(g, 'GET', `/${TOKEN_A}/status/?instance=acme`)).status).toBe(200);
    expect((await call(g, 'GET', `/${TOKEN_B}/metrics`)).status).toBe(200);
    expect((await call(g, 'GET', '/status/', { headers: { Authorization: `Bearer ${TOKEN_A}` } })).status).toBe(200);
  });

  it('keeps /healthz and /readyz open, and counts refusals under rejected inputs', async () => {
    expect((await call(g, 'GET', '/healthz')).status).toBe(200);
    expect((await call(g, 'GET', '/readyz')).status).toBe(200);
    const status = JSON.parse((await call(g, 'GET', `/${TOKEN_A}/status/`)).body) as { 'messages.rejected': Record<string, number> };
    expect(status['messages.rejected'].unauthorized).toBeGreaterThanOrEqual(4);
    const metrics = (await call(g, 'GET', '/metrics', { headers: { Authorization: `Bearer ${TOKEN_A}` } })).body;
    expect(metrics).toMatch(/^tidings_rejected_total\{reason="unauthorized"\} [4-9]/m);
  });

  it('never logs a token, right or wrong', async () => {
    const text = JSON.stringify(g.logs) + g.stderr();
    expect(g.logs.some((l) => l.msg === 'admin request refused: no valid token')).toBe(true);
    for (const secret of [TOKEN_A, TOKEN_B, WRONG]) expect(text).not.toContain(secret);
  });
});

describe('admin port: addresses allowed without a token', () => {
  it('lets auth.adminAllow addresses publish without a token, and only those', async () => {
    const allowed = await gateway({ auth: { adminTokens: [TOKEN_A], adminAllow: ['127.0.0.0/8'] } });
    expect((await call(allowed, 'POST', '/', { body: publishBody('peer') })).status).toBe(200);
    expect((await call(allowed, 'GET', '/status/')).status).toBe(200);
    const elsewhere = await gateway({ auth: { adminTokens: [TOKEN_A], adminAllow: ['10.0.0.0/8'] } });
    expect((await call(elsewhere, 'POST', '/', { body: publishBody('peer') })).status).toBe(401);
  });
});

describe('admin port: publishes per second', () => {
  it('answers 429 with Retry-After past limits.maxPublishesPerSecond, per token', async () => {
    const g = await gateway({ auth: { adminTokens: [TOKEN_A, TOKEN_B] }, limits: { maxPublishesPerSecond: 3 } });
    const statuses: number[] = [];
    let retryAfter: string | string[] | undefined;
    for (let i = 0; i < 6; i++) {
      const res = await call(g, 'POST', '/', { body: publishBody(`r${i}`), headers: { Authorization: `Bearer ${TOKEN_A}` } });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers['retry-after'];
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Another token has its own allowance.
    expect((await call(g, 'POST', '/', { body: publishBody('other'), headers: { Authorization: `Bearer ${TOKEN_B}` } })).status).toBe(200);
  });
});
