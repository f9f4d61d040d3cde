/**
 * limits.maxConnectionsPerIp and limits.trustProxy against a real gateway process: past the
 * cap an upgrade (raw or Socket.IO) is refused with 429; X-Forwarded-For names the client
 * only when the connection comes from a trusted proxy.
 */
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { sleep, spawnGateway, type GatewayProcess } from '@tidings/testing';

const gateways: GatewayProcess[] = [];
const open: WebSocket[] = [];
afterAll(async () => {
  for (const ws of open) ws.terminate();
  await Promise.all(gateways.map((g) => g.stop('SIGINT')));
});

function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    ws.once('open', () => {
      open.push(ws);
      resolve({ status: 101, ws });
    });
    ws.once('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
  });
}

it('refuses a third connection from one address with 429, on both transports, and takes one again after a close', async () => {
  const g = await spawnGateway({ config: { limits: { maxConnectionsPerIp: 2 } } });
  gateways.push(g);
  const first = await upgrade(g.clientUrl);
  const second = await upgrade(g.clientUrl);
  expect([first.status, second.status]).toEqual([101, 101]);
  expect((await upgrade(g.clientUrl)).status).toBe(429);
  const sio = io(g.clientUrl.replace(/^ws/, 'http'), { path: '/socket.io/', transports: ['websocket'], reconnection: false, forceNew: true });
  await expect(
    new Promise<void>((resolve, reject) => {
      sio.once('connect', () => resolve());
      sio.once('connect_error', reject);
    }),
  ).rejects.toThrow('too many connections from this address');
  sio.close();
  // Believed only from trusted proxies: here it is ignored, all is 127.0.0.1.
  expect((await upgrade(g.clientUrl, { 'X-Forwarded-For': '10.9.9.9' })).status).toBe(429);
  first.ws!.close();
  for (let i = 0; i < 50; i++) {
    const again = await upgrade(g.clientUrl);
    if (again.status === 101) return;
    await sleep(20);
  }
  throw new Error('no connection was taken after one closed');
});

it('counts by X-Forwarded-For behind a trusted proxy', async () => {
  const g = await spawnGateway({ config: { limits: { maxConnectionsPerIp: 1, trustProxy: ['127.0.0.1'] } } });
  gateways.push(g);
  const xff = (address: string) => ({ 'X-Forwarded-For': address });
  expect((await upgrade(g.clientUrl, xff('10.0.0.1'))).status).toBe(101);
  expect((await upgrade(g.clientUrl, xff('10.0.0.1'))).status).toBe(429);
  expect((await upgrade(g.clientUrl, xff('10.0.0.2'))).status).toBe(101);
  // A client cannot spoof past the proxy: only the rightmost untrusted hop counts.
  expect((await upgrade(g.clientUrl, xff('10.0.0.3, 10.0.0.1'))).status).toBe(429);
  const status = (await (await fetch(`${g.adminUrl}/status/`)).json()) as { 'messages.rejected': Record<string, number> };
  expect(status['messages.rejected'].address_limit).toBe(2);
});
