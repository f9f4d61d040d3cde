/**
 * The client against real in-process gateways on 127.0.0.1, over both transports.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { resolveConfig, silentLogger } from '@tidings/protocol';
// Specs run against real gateways; the library itself never imports the gateway.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { Gateway } from '@tidings/gateway';
import { notification, post, sleep } from '@tidings/testing';
import { connect, TidingsAckError, type ClientStatus, type TidingsClient, type TidingsMessage } from './index';

function gatewayConfig(clientPort = 0, extra: Record<string, unknown> = {}) {
  return resolveConfig({
    servers: [
      { type: 'client', port: clientPort, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    ...extra,
  });
}

const clients: TidingsClient[] = [];
const gateways: Gateway[] = [];

async function startGateway(clientPort = 0, extra: Record<string, unknown> = {}): Promise<Gateway> {
  const gw = await new Gateway({ config: gatewayConfig(clientPort, extra), logger: silentLogger }).start();
  gateways.push(gw);
  return gw;
}

function track(client: TidingsClient) {
  clients.push(client);
  const messages: TidingsMessage[] = [];
  const statuses: ClientStatus[] = [];
  client.on('message', (m) => messages.push(m));
  client.on('status', (s) => statuses.push(s));
  return { client, messages, statuses };
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

describe.each(['aphlict', 'socket.io'] as const)('client over %s', (transport) => {
  it('connects, subscribes and receives the published object as a typed message', async () => {
    const gw = await startGateway();
    const { client, messages, statuses } = track(connect(gw.url('client'), { transport }));
    await client.waitForOpen();
    await client.subscribe(['PHID-1']);
    const msg = notification(['PHID-1'], { text: 'héllo' });
    expect((await post(gw.url('admin'), msg)).status).toBe(200);
    await until(() => messages.length === 1, 'the message');
    expect(messages[0]).toEqual({ ...msg, touched: [gw.node.fingerprint] });
    expect(statuses.slice(0, 2)).toEqual([{ state: 'connecting', attempt: 0 }, { state: 'open', reconnected: false }]);
  });

  it('sends subscriptions made before it opened, keeps instances apart, and unsubscribes', async () => {
    const gw = await startGateway();
    const acme = track(connect(gw.url('client'), { transport, instance: 'acme' }));
    const dflt = track(connect(gw.url('client'), { transport }));
    const early = acme.client.subscribe(['PHID-I']);
    await early;
    await dflt.client.subscribe(['PHID-I']);
    await Promise.all([acme.client.waitForOpen(), dflt.client.waitForOpen()]);
    await until(() => gw.node.hub.memberCount() + (gw.socketio?.connectionCount ?? 0) === 2, 'both connected');
    // The early subscription is sent at open: a ping (or ack) after it proves it is in place.
    await acme.client.subscribe(['PHID-OTHER']);
    await dflt.client.subscribe(['PHID-OTHER']);
    await post(gw.url('admin'), notification(['PHID-I'], { tenant: 'acme' }), { instance: 'acme' });
    await post(gw.url('admin'), notification(['PHID-I'], { tenant: 'default' }));
    await until(() => acme.messages.length === 1 && dflt.messages.length === 1, 'one message each');
    expect(acme.messages[0].tenant).toBe('acme');
    expect(dflt.messages[0].tenant).toBe('default');
    await acme.client.unsubscribe(['PHID-I']);
    await post(gw.url('admin'), notification(['PHID-I'], { tenant: 'acme', n: 2 }), { instance: 'acme' });
    await post(gw.url('admin'), notification(['PHID-OTHER'], { tenant: 'acme', n: 3 }), { instance: 'acme' });
    await until(() => acme.messages.length === 2, 'the message on the PHID still held');
    await sleep(100);
    expect(acme.messages.map((m) => m.n)).toEqual([undefined, 3]);
    expect(acme.client.subscriptions).toEqual(['PHID-OTHER']);
  });

  it('drops a message it already has (same uniqueID), e.g. when a replay overlaps live delivery', async () => {
    const gw = await startGateway();
    const { client, messages } = track(connect(gw.url('client'), { transport }));
    await client.waitForOpen();
    await client.subscribe(['PHID-D']);
    for (let i = 0; i < 3; i++) await post(gw.url('admin'), notification(['PHID-D'], { n: i }));
    await until(() => messages.length === 3, 'three messages');
    await client.replay(60_000);
    await until(() => client.stats.duplicates === 3, 'the replayed copies');
    await sleep(50);
    expect(messages.map((m) => m.n)).toEqual([0, 1, 2]);
    expect(client.stats).toMatchObject({ received: 3, duplicates: 3 });
  });

  it.each([true, false])('reconnects when its node goes away, resubscribes, and replays what it missed meanwhile (positions: %s)', async (positions) => {
    const first = await startGateway();
    const port = Number(new URL(first.url('client')).port);
    const { client, messages, statuses } = track(
      connect(first.url('client'), { transport, positions, reconnect: { initialDelayMs: 300, maxDelayMs: 1_000 }, replayMarginMs: 2_000 }),
    );
    await client.waitForOpen();
    await client.subscribe(['PHID-R']);
    await post(first.url('admin'), notification(['PHID-R'], { n: 'before' }));
    await until(() => messages.length === 1, 'the first message');
    await first.close();
    // Aphlict's policy: at once after an open connection, then the backoff while the port is closed.
    await until(() => statuses.filter((s) => s.state === 'reconnecting').length >= 2, 'two reconnect rounds');
    const rounds = statuses.filter((s): s is Extract<ClientStatus, { state: 'reconnecting' }> => s.state === 'reconnecting');
    expect(rounds[0].delayMs).toBe(0);
    expect(rounds[1].delayMs).toBeGreaterThanOrEqual(210);
    expect(rounds[1].delayMs).toBeLessThanOrEqual(300);
    // The node comes back on the same port (new memory history) and accepts a message before the client is back.
    const second = await startGateway(port);
    const missed = notification(['PHID-R'], { n: 'missed' });
    await post(second.url('admin'), missed);
    await until(() => client.isOpen, 'the reconnect', 5_000);
    // With positions, a replay by position: the new node's memory history has a new epoch,
    // so the client learns it may have lost messages (and still gets what that node kept).
    // Without, a replay by age, which cannot tell.
    expect(statuses.filter((s) => s.state === 'open').pop()).toEqual(
      positions ? { state: 'open', reconnected: true, recovered: false } : { state: 'open', reconnected: true },
    );
    // Open comes after the replay: the missed message is already there.
    expect(messages.map((m) => m.n)).toEqual(['before', 'missed']);
    await post(second.url('admin'), notification(['PHID-R'], { n: 'after' }));
    await until(() => messages.length === 3, 'live delivery after the reconnect');
    await sleep(100);
    expect(messages.map((m) => m.n)).toEqual(['before', 'missed', 'after']);
    expect(client.stats.reconnects).toBe(1);
  });

  it('close() ends everything: no reconnect afterwards, even when the node comes back', async () => {
    const gw = await startGateway();
    const port = Number(new URL(gw.url('client')).port);
    const { client, statuses } = track(connect(gw.url('client'), { transport, reconnect: { initialDelayMs: 50, maxDelayMs: 50 } }));
    await client.waitForOpen();
    await gw.close();
    await until(() => statuses.some((s) => s.state === 'reconnecting' && s.attempt >= 2), 'reconnect attempts');
    await client.close();
    expect(statuses[statuses.length - 1]).toEqual({ state: 'closed', reason: 'closed by client' });
    const count = statuses.length;
    const again = await startGateway(port);
    await sleep(300);
    expect(statuses.length).toBe(count);
    expect(again.node.hub.memberCount() + (again.socketio?.connectionCount ?? 0)).toBe(0);
    await client.close(); // idempotent
  });

  it('gives up when the policy says so, with status closed', async () => {
    const { client, statuses } = track(
      connect('ws://127.0.0.1:9', { transport, reconnect: { initialDelayMs: 20, maxDelayMs: 20, maxAttempts: 2 } }),
    );
    await until(() => client.status === 'closed', 'giving up');
    expect(statuses.filter((s) => s.state === 'connecting')).toHaveLength(3);
    expect(statuses[statuses.length - 1]).toMatchObject({ state: 'closed' });
  });
});

describe('client, transport specifics', () => {
  it('socket.io: a refused subscription rejects with the ack error', async () => {
    const gw = await startGateway(0, { limits: { maxSubscriptionsPerSocket: 2 } });
    const { client } = track(connect(gw.url('client'), { transport: 'socket.io' }));
    await client.waitForOpen();
    const err = await client.subscribe(['A', 'B', 'C']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TidingsAckError);
    expect(err).toMatchObject({ code: 'subscription_cap', ack: { refused: 1 } });
  });

  it('aphlict: pings to keep the connection alive, and ends a connection whose pongs stop', async () => {
    // A WebSocket server that accepts and then never answers.
    const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => silent.once('listening', r));
    const frames: string[] = [];
    silent.on('connection', (ws) => ws.on('message', (d) => frames.push(d.toString())));
    try {
      const url = `ws://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const { client, statuses } = track(
        connect(url, { pingIntervalMs: 50, pongTimeoutMs: 200, reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 } }),
      );
      await until(() => statuses.some((s) => s.state === 'reconnecting'), 'the keepalive timeout');
      expect(frames.filter((f) => f === '{"command":"ping"}').length).toBeGreaterThanOrEqual(1);
      expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ reason: 'keepalive timeout: no pong', delayMs: 0 });
      await client.close();
    } finally {
      for (const ws of silent.clients) ws.terminate();
      await new Promise((r) => silent.close(r));
    }
  });

  it('refuses what is not a client URL at once, and an unknown transport', () => {
    expect(() => connect('not a url')).toThrow();
    expect(() => connect('ftp://h/')).toThrow(/ws, wss, http or https/);
    expect(() => connect([])).toThrow(/no URL/);
    expect(() => connect('ws://h/', { transport: 'carrier-pigeon' as never })).toThrow(/unknown transport/);
  });

  it('aphlict: puts the instance in the path as Aphlict reads it, keeping a deployment prefix', async () => {
    const { aphlictUrl } = await import('./index');
    expect(aphlictUrl('ws://h:1', 'acme')).toBe('ws://h:1/~acme/');
    expect(aphlictUrl('wss://h/ws/', 'acme')).toBe('wss://h/ws/~acme/');
    expect(aphlictUrl('http://h:1/ws', 'default')).toBe('ws://h:1/ws/~default/');
    expect(aphlictUrl('ws://h:1/~other/', 'acme')).toBe('ws://h:1/~other/');
  });
});
