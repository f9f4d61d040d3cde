/**
 * X-Forwarded-For through a real HAProxy built by deploy/haproxy-config.cjs: both frontends
 * (client WebSockets and admin publishes) tell the servers behind them the address each
 * connection came from. Clients bind their own loopback addresses (127.0.0.3, ...) so
 * they differ from HAProxy's 127.0.0.1; the servers behind it are small recording servers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { createClientAddressResolver } from '@tidings/auth';
import { freePort } from '@tidings/testing';
import { startHaproxy, type HaproxyProcess } from './haproxy';

interface Seen {
  url: string;
  remoteAddress: string | undefined;
  forwardedFor: string | undefined;
}

let haproxy: HaproxyProcess | undefined;
let admin: http.Server;
let client: http.Server;
let wss: WebSocketServer;
const adminSeen: Seen[] = [];
const clientSeen: Seen[] = [];

const seen = (req: http.IncomingMessage): Seen => ({
  url: req.url!,
  remoteAddress: req.socket.remoteAddress,
  forwardedFor: req.headers['x-forwarded-for'] as string | undefined,
});

beforeAll(async () => {
  admin = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      // HAProxy's own health checks ask /readyz: not what this test looks at.
      if (req.url !== '/readyz') adminSeen.push(seen(req));
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(req.url === '/readyz' ? '{"status":"ready"}' : '{"fingerprint":"recordingServer0"}');
    });
  });
  client = http.createServer((_req, res) => {
    res.writeHead(501);
    res.end();
  });
  wss = new WebSocketServer({ server: client });
  wss.on('connection', (ws, req) => {
    clientSeen.push(seen(req));
    ws.send('{"type":"hello"}');
  });
  const listen = (server: http.Server, port: number) => new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  await listen(admin, await freePort());
  await listen(client, await freePort());
  haproxy = await startHaproxy([{ name: 'rec1', clientPort: (client.address() as AddressInfo).port, adminPort: (admin.address() as AddressInfo).port }], 200);
  await haproxy.waitFor(['rec1'], 'UP');
});

afterAll(async () => {
  await haproxy?.stop();
  for (const ws of wss?.clients ?? []) ws.terminate();
  await new Promise((r) => wss?.close(r));
  for (const server of [admin, client]) {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }
});

/** A WebSocket through HAProxy's client frontend from `localAddress`; resolves on its first frame. */
function socketFrom(localAddress: string, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${haproxy!.clientUrl}/~acme/`, { localAddress, headers });
    ws.once('message', () => {
      ws.close();
      resolve();
    });
    ws.once('error', reject);
  });
}

/** A publish through HAProxy's admin frontend from `localAddress`. */
function publishFrom(localAddress: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(haproxy!.adminUrl);
    const req = http.request(
      { host: url.hostname, port: url.port, method: 'POST', path: '/?instance=acme', localAddress, headers: { 'Content-Type': 'application/json', ...headers } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end('{"subscribers":["PHID-X"]}');
  });
}

describe('HAProxy X-Forwarded-For', () => {
  it('haproxy xff - the client frontend tells the gateway each WebSocket\'s own address', async () => {
    await socketFrom('127.0.0.3');
    await socketFrom('127.0.0.4');
    expect(clientSeen.map((s) => [s.url, s.remoteAddress, s.forwardedFor])).toEqual([
      ['/~acme/', '127.0.0.1', '127.0.0.3'],
      ['/~acme/', '127.0.0.1', '127.0.0.4'],
    ]);
  });

  it('haproxy xff - the admin frontend tells the gateway each publisher\'s own address', async () => {
    expect(await publishFrom('127.0.0.5')).toBe(200);
    expect(adminSeen.map((s) => [s.url, s.remoteAddress, s.forwardedFor])).toEqual([['/?instance=acme', '127.0.0.1', '127.0.0.5']]);
  });

  it('haproxy xff - an address a client claims comes before HAProxy\'s own entry, so a gateway trusting HAProxy alone is not fooled', async () => {
    clientSeen.length = 0;
    adminSeen.length = 0;
    await socketFrom('127.0.0.6', { 'X-Forwarded-For': '203.0.113.66' });
    expect(await publishFrom('127.0.0.7', { 'X-Forwarded-For': '203.0.113.77' })).toBe(200);
    const [ws] = clientSeen;
    const [publish] = adminSeen;
    expect(ws.forwardedFor).toBe('203.0.113.66, 127.0.0.6');
    expect(publish.forwardedFor).toBe('203.0.113.77, 127.0.0.7');
    // As the gateway resolves it with limits.trustProxy = HAProxy's address (the local cluster's setting)...
    const trusting = createClientAddressResolver(['127.0.0.1']);
    expect(trusting.resolve(ws.remoteAddress, ws.forwardedFor)).toBe('127.0.0.6');
    expect(trusting.resolve(publish.remoteAddress, publish.forwardedFor)).toBe('127.0.0.7');
    // ...and without it (positive control: the header is what made the difference): HAProxy's address.
    const plain = createClientAddressResolver([]);
    expect(plain.resolve(ws.remoteAddress, ws.forwardedFor)).toBe('127.0.0.1');
  });
});
