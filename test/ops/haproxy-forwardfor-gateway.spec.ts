/**
 * A gateway process behind a real HAProxy (deploy/haproxy-config.cjs) that trusts it
 * (`limits.trustProxy: ["127.0.0.1"]`, as tools/local-cluster.mjs sets it): per-address
 * limits count each client's own address, not HAProxy's. Clients bind their own loopback
 * addresses (127.0.0.3, 127.0.0.4, ...).
 *
 * NEEDS THE LEAD'S WIRING (client-server.ts applying limits.maxConnectionsPerIp with the
 * client address resolver; admin-app.ts applying limits.maxPublishesPerSecond per source
 * address): until it lands no connection or publish is refused and these tests fail.
 */
import http from 'node:http';
import { WebSocket } from 'ws';
import { freePort, spawnGateway, type GatewayProcess } from '@tidings/testing';
import { startHaproxy, type HaproxyProcess } from './haproxy';

let gateway: GatewayProcess;
let haproxy: HaproxyProcess;
const open: WebSocket[] = [];

beforeAll(async () => {
  const ports = { name: 'gw1', clientPort: await freePort(), adminPort: await freePort() };
  gateway = await spawnGateway({
    clientPort: ports.clientPort,
    adminPort: ports.adminPort,
    config: { limits: { maxConnectionsPerIp: 1, maxPublishesPerSecond: 2, trustProxy: ['127.0.0.1'] } },
  });
  haproxy = await startHaproxy([ports], 200);
  await haproxy.waitFor(['gw1'], 'UP');
});

afterAll(async () => {
  for (const ws of open) ws.terminate();
  await Promise.allSettled([haproxy?.stop(), gateway?.kill()]);
});

/** A raw socket through HAProxy from `localAddress`: 'open', or the HTTP status that refused it. */
function socketFrom(localAddress: string): Promise<'open' | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${haproxy.clientUrl}/~acme/`, { localAddress });
    ws.once('open', () => {
      open.push(ws);
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once('error', reject);
  });
}

function publishFrom(localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(haproxy.adminUrl);
    const req = http.request(
      { host: url.hostname, port: url.port, method: 'POST', path: '/?instance=acme', localAddress, headers: { 'Content-Type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify({ type: 'notification', subscribers: ['PHID-X'] }));
  });
}

describe('a gateway behind HAProxy that trusts its X-Forwarded-For (needs the limits wiring)', () => {
  it('haproxy xff gateway - limits.maxConnectionsPerIp counts each client address, not HAProxy\'s', async () => {
    expect(await socketFrom('127.0.0.3')).toBe('open');
    // The same client address again: over its limit of 1.
    expect(await socketFrom('127.0.0.3')).toBe(429);
    // Another client address through the same HAProxy: its own count (all would be 127.0.0.1 without the header).
    expect(await socketFrom('127.0.0.4')).toBe('open');
  });

  it('haproxy xff gateway - limits.maxPublishesPerSecond counts each publisher address, not HAProxy\'s', async () => {
    const fromA: number[] = [];
    for (let i = 0; i < 6; i++) fromA.push(await publishFrom('127.0.0.5'));
    expect(fromA).toContain(429);
    expect(fromA.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    // Another publisher right after: its own budget.
    expect(await publishFrom('127.0.0.6')).toBe(200);
  });
});
