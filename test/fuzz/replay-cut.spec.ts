/**
 * A socket that goes away in the middle of a `replay`, with frames queued behind the replay,
 * must not take the gateway process down (regression: the queued `subscribe` ran after the
 * socket had left the hub, and "hub: subscribe() of a member that was not added" escaped
 * from the replay's .finally() as an uncaught exception). Three ways to go away: the client
 * resets the TCP connection, the server cuts a slow reader, and SIGTERM drains the node.
 * Real gateway processes with Redis shared history holding a few thousand messages.
 */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import {
  connectSocket,
  getStatus,
  messagesOf,
  notification,
  post,
  sleep,
  spawnGateway,
  startRedis,
  type GatewayProcess,
  type RedisHandle,
} from '@tidings/testing';

const PHID = 'PHID-USER-replayed';
const LATE_PHID = 'PHID-USER-queued-behind-replay';

/** About 10 MB of history, well over what loopback TCP buffers for a reader that stops reading. */
const BIG_HISTORY = { count: 1_000, padBytes: 10_000 };

let redis: RedisHandle;
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.kill()));
});

afterAll(async () => {
  await redis.stop();
});

async function startGateway(config: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const keyPrefix = `tidings-replay-cut-${process.pid}-${Math.random().toString(36).slice(2, 8)}:`;
  const gateway = await spawnGateway({ config: { ...config, redis: { url: redis.url, keyPrefix } }, env });
  gateways.push(gateway);
  return gateway;
}

/** Publishes `count` messages to PHID, 50 at a time, each padded to about `padBytes`. */
async function fillHistory(gateway: GatewayProcess, count: number, padBytes: number): Promise<void> {
  const pad = 'x'.repeat(padBytes);
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, k) => post(gateway.adminUrl, notification([PHID], { n: i + k, pad })));
    for (const res of await Promise.all(batch)) expect(res.status).toBe(200);
  }
  // Positive control: the replays below really have this much to send.
  expect((await getStatus(gateway.adminUrl))['history.size']).toBe(count);
}

function isAlive(gateway: GatewayProcess): boolean {
  return gateway.child.exitCode === null && gateway.child.signalCode === null;
}

/** The process still delivers: a fresh socket subscribes and receives a new publish. */
async function expectDelivers(gateway: GatewayProcess): Promise<void> {
  const fresh = await connectSocket(gateway.clientUrl);
  fresh.send('subscribe', ['PHID-USER-fresh']);
  await fresh.roundTrip();
  const res = await post(gateway.adminUrl, notification(['PHID-USER-fresh'], { after: true }));
  expect(res.status).toBe(200);
  await fresh.waitFor((r) => messagesOf(r).some((m) => m.after === true), 5_000, 'the publish after the run');
  await fresh.close();
}

function fatalLogs(gateway: GatewayProcess): unknown[] {
  return gateway.logs.filter((l) => typeof l.level === 'number' && l.level >= 50);
}

function tcpOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/** Opens a raw socket and sends subscribe, replay and, queued behind the replay, another subscribe. */
function openAndQueue(url: string, onOpen: (ws: WebSocket) => void): WebSocket {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  ws.once('open', () => {
    ws.send(JSON.stringify({ command: 'subscribe', data: [PHID] }));
    ws.send(JSON.stringify({ command: 'replay', data: { age: 60_000 } }));
    ws.send(JSON.stringify({ command: 'subscribe', data: [LATE_PHID] }));
    onOpen(ws);
  });
  return ws;
}

describe('replay cut off - the gateway survives a socket that goes away during a replay', () => {
  it(
    'client reset: ~1,500 connections send subscribe, replay, subscribe and reset the TCP connection a few ms later; the process lives and delivers',
    async () => {
      const gateway = await startGateway();
      const historySize = 3_000;
      await fillHistory(gateway, historySize, 200);

      const maxConnections = 1_500;
      const deadline = Date.now() + 40_000;
      let connections = 0;
      let cutMidReplay = 0;
      let cutBeforeFirstFrame = 0;
      while (connections < maxConnections && Date.now() < deadline && isAlive(gateway)) {
        connections++;
        const frames = await new Promise<number>((resolve) => {
          let received = 0;
          const ws = openAndQueue(gateway.clientUrl, () => {
            setTimeout(() => {
              tcpOf(ws).resetAndDestroy();
              resolve(received);
            }, 2 + Math.random() * 5);
          });
          ws.on('message', () => received++);
          ws.once('close', () => resolve(received));
        });
        if (frames === 0) cutBeforeFirstFrame++;
        else if (frames < historySize) cutMidReplay++;
      }
      await sleep(500);
      process.stdout.write(`replay-cut: ${connections} connections, ${cutBeforeFirstFrame} reset before the first replayed frame, ${cutMidReplay} in the middle\n`);
      expect({ alive: isAlive(gateway), fatal: fatalLogs(gateway) }).toEqual({ alive: true, fatal: [] });
      // Positive controls: the run was as long as asked, the server took up the replays, and
      // the resets came before they were over (most before the first replayed frame arrived,
      // while the history read was in flight).
      expect(connections).toBeGreaterThanOrEqual(Math.min(maxConnections, 500));
      expect(cutMidReplay + cutBeforeFirstFrame).toBeGreaterThan(connections / 2);
      await expectDelivers(gateway);
      const status = await getStatus(gateway.adminUrl);
      expect(status['messages.replays']).toBeGreaterThanOrEqual(connections * 0.9);
      // Every reset socket left the hub (only the fresh socket came and went since).
      expect(status['clients.node.active']).toBe(0);
    },
    120_000,
  );

  it(
    'server cut: a reader that stops reading is cut off by limits.maxBufferedBytes in the middle of its replay; the process lives and delivers',
    async () => {
      // A 16 kB bound, and entries of 14 kB (the largest message accepted must fit the bound).
      // Loopback TCP takes about 4 MB from a reader that does not read; past that, the replay
      // either passes the bound at once (an entry on top of what is unsent) or waits for a
      // drain with over half the bound unsent, and then a live message to the same PHID
      // passes it: cut off in the middle of its replay, with a subscribe queued behind it.
      const gateway = await startGateway({ limits: { maxBufferedBytes: 16_384, maxBodyBytes: 15_000 } });
      await fillHistory(gateway, 600, 14_000);

      const rounds = 10;
      for (let i = 0; i < rounds && isAlive(gateway); i++) {
        const before = (await getStatus(gateway.adminUrl))['clients.slowReaderCloses'] as number;
        const ws = openAndQueue(gateway.clientUrl, (open) => tcpOf(open).pause());
        const deadline = Date.now() + 5_000;
        let cut = false;
        while (!cut && Date.now() < deadline && isAlive(gateway)) {
          await sleep(20);
          await post(gateway.adminUrl, notification([PHID], { live: true, pad: 'x'.repeat(8_000) })).catch(() => undefined);
          cut = (await getStatus(gateway.adminUrl).catch(() => ({ 'clients.slowReaderCloses': before })))['clients.slowReaderCloses'] !== before;
        }
        ws.terminate();
        if (isAlive(gateway)) expect({ round: i, cut }).toEqual({ round: i, cut: true });
      }
      await sleep(300);
      expect({ alive: isAlive(gateway), fatal: fatalLogs(gateway) }).toEqual({ alive: true, fatal: [] });
      expect((await getStatus(gateway.adminUrl))['clients.slowReaderCloses']).toBe(rounds);
      await expectDelivers(gateway);
    },
    120_000,
  );

  it(
    'server cut: SIGTERM while replays are in flight (readers paused and reading) drains and exits 0',
    async () => {
      const gateway = await startGateway({}, { TIDINGS_SHUTDOWN_DRAIN_MS: '0' });
      // More than loopback TCP takes from a reader that does not read (about 4 MB): the
      // paused readers' replays wait for a drain when SIGTERM comes.
      await fillHistory(gateway, BIG_HISTORY.count, BIG_HISTORY.padBytes);

      const sockets: WebSocket[] = [];
      await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) =>
            new Promise<void>((resolve) => {
              // Half stop reading (their replay waits for a drain that never comes), half read.
              sockets.push(
                openAndQueue(gateway.clientUrl, (ws) => {
                  if (i % 2 === 0) tcpOf(ws).pause();
                  resolve();
                }),
              );
            }),
        ),
      );
      // Until the replays are under way: the first frames reached the reading half.
      await sleep(100);
      expect((await getStatus(gateway.adminUrl))['messages.replays']).toBe(20);
      const code = await gateway.stop('SIGTERM');
      for (const ws of sockets) ws.terminate();
      expect({ code, fatal: fatalLogs(gateway) }).toEqual({ code: 0, fatal: [] });
      expect(gateway.logs.map((l) => l.msg)).toContain('gateway closed');
    },
    60_000,
  );
});
