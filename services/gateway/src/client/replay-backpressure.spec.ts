/**
 * A replay larger than the slow-reader bound reaches a client that reads, however slowly:
 * the replay waits for the socket to drain instead of tripping the bound, while live
 * delivery to a reader that stopped still cuts it off (gateway.spec.ts).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { Gateway } from '../gateway';

const PHID = 'PHID-TEST-replay';
const COUNT = 3_000;
const BODY = 'x'.repeat(4_096);

let gateway: Gateway;

beforeAll(async () => {
  gateway = await new Gateway({
    config: resolveConfig({
      servers: [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port: 0, listen: '127.0.0.1' },
      ],
      limits: { maxBufferedBytes: 256 * 1024, maxBodyBytes: 128 * 1024 },
    }),
    logger: silentLogger,
  }).start();
  // ~12 MB of history, far past what loopback's kernel buffers take while the reader pauses.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const admin = new URL(gateway.url('admin'));
  const post = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ type: 'notification', key: String(i), subscribers: [PHID], uniqueID: `replay-${i}`, body: BODY });
      const req = http.request({ host: admin.hostname, port: admin.port, method: 'POST', path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  for (let i = 0; i < COUNT; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => post(i + j)));
  agent.destroy();
}, 60_000);

afterAll(async () => {
  await gateway.close();
});

it('a replay past the slow-reader bound waits for a slow but live reader and sends everything', async () => {
  const ws = new WebSocket(gateway.url('client'));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const keys: string[] = [];
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { key?: string };
    if (frame.key) keys.push(frame.key);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send(JSON.stringify({ command: 'subscribe', data: [PHID] }));
  ws.send(JSON.stringify({ command: 'replay', data: { age: 60_000 } }));
  // Read slowly: pause the TCP socket for a while, twice.
  const tcp = (ws as unknown as { _socket: Socket })._socket;
  for (let i = 0; i < 2; i++) {
    tcp.pause();
    await new Promise((r) => setTimeout(r, 300));
    tcp.resume();
    await new Promise((r) => setTimeout(r, 50));
  }
  const deadline = Date.now() + 20_000;
  while (keys.length < COUNT && Date.now() < deadline && ws.readyState === WebSocket.OPEN) {
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(ws.readyState).toBe(WebSocket.OPEN);
  expect(keys).toHaveLength(COUNT);
  expect(new Set(keys).size).toBe(COUNT);
  expect(gateway.node.counters.slowReaderCloses).toBe(0);
  ws.close();
  await closed;
}, 60_000);
