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
import { connect, TidingsAckError, type ClientStatus, type Position, type TidingsClient, type TidingsMessage } from './index';

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

/** A message as Phorge's publishers may send it, without a uniqueID: only its position tells copies apart. */
function bare(phids: string[], key: string): Record<string, unknown> {
  return { type: 'notification', key, subscribers: phids };
}

describe.each(['aphlict', 'socket.io'] as const)('client over %s - positions and subscribe', (transport) => {
  it('positions - a message comes with its position as a second argument and without the wire key; a replay overlapping live delivery is dropped by position even without uniqueID', async () => {
    const gw = await startGateway();
    const { client, statuses } = track(connect(gw.url('client'), { transport }));
    const got: [TidingsMessage, Position | undefined][] = [];
    client.on('message', (m, p) => got.push([m, p]));
    await client.subscribe(['PHID-N']);
    for (const key of ['a', 'b', 'c']) await post(gw.url('admin'), bare(['PHID-N'], key));
    await until(() => got.length === 3, 'three messages');
    const epoch = got[0][1]?.epoch;
    expect(typeof epoch).toBe('string');
    expect(got.map(([m, p]) => [m.key, p])).toEqual(['a', 'b', 'c'].map((key, i) => [key, { offset: i + 1, epoch }]));
    expect(got.every(([m]) => !('tidings' in m))).toBe(true);
    expect(got[0][0]).toEqual({ ...bare(['PHID-N'], 'a'), touched: [gw.node.fingerprint] });
    expect(client.position).toEqual({ offset: 3, epoch });
    expect(statuses.filter((s) => s.state === 'open')).toEqual([{ state: 'open', reconnected: false }]);
    // The three again, by a replay: same positions, so dropped although they have no uniqueID.
    await client.replay(60_000);
    expect(client.stats).toMatchObject({ received: 3, duplicates: 3 });
    await post(gw.url('admin'), bare(['PHID-N'], 'd'));
    await until(() => got.length === 4, 'the next message');
    expect(got[3][1]).toEqual({ offset: 4, epoch });

    // Positive control: without positions the same replay hands the three to the app again.
    const plain = track(connect(gw.url('client'), { transport, positions: false }));
    await plain.client.subscribe(['PHID-N']);
    await plain.client.replay(60_000);
    expect(plain.messages.map((m) => m.key)).toEqual(['a', 'b', 'c', 'd']);
    await plain.client.replay(60_000);
    expect(plain.messages.map((m) => m.key)).toEqual(['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
    expect(plain.client.position).toBeNull();
  });

  it('positions - when the server asks it to replay from its position (after a bus outage), it reconnects at once, recovered: true, every message once', async () => {
    const gw = await startGateway();
    const { client, messages, statuses } = track(connect(gw.url('client'), { transport }));
    await client.subscribe(['PHID-S']);
    const keys: string[] = [];
    for (let i = 0; i < 30; i++) {
      const key = `m${i}`;
      keys.push(key);
      await post(gw.url('admin'), bare(['PHID-S'], key));
      // What a gateway does after its bus comes back (raw: close 1012; Socket.IO: transport dropped).
      if (i === 9 || i === 19) for (const resync of gw.node.resyncHandlers) resync();
    }
    await until(() => statuses.filter((s) => s.state === 'open').length === 3, 'two reconnects');
    await until(() => messages.length >= keys.length, 'every message');
    await sleep(100);
    expect(messages.map((m) => m.key).sort()).toEqual([...keys].sort());
    expect(statuses.filter((s) => s.state === 'open').slice(1)).toEqual([
      { state: 'open', reconnected: true, recovered: true },
      { state: 'open', reconnected: true, recovered: true },
    ]);
    const lost = statuses.filter((s): s is Extract<ClientStatus, { state: 'reconnecting' }> => s.state === 'reconnecting');
    expect(lost.map((s) => s.delayMs)).toEqual([0, 0]);
    expect(lost[0].reason).toBe(transport === 'aphlict' ? 'closed with 1012 replay from your position' : 'disconnected: transport close');
    expect(client.stats).toMatchObject({ reconnects: 2, replays: 2, received: 30 });
    // The gaps were real: the replays had messages to send (about 5 each here).
    expect(gw.node.counters.replayEntriesSent).toBeGreaterThan(0);
    expect(client.position?.offset).toBe(30);
  });

  it('subscribe - right after connect(), resolves once the server holds it: a message published then arrives', async () => {
    const gw = await startGateway();
    const { client, messages } = track(connect(gw.url('client'), { transport }));
    await client.subscribe(['PHID-NOW']);
    expect(client.isOpen).toBe(true);
    await post(gw.url('admin'), notification(['PHID-NOW'], { n: 1 }));
    await until(() => messages.length === 1, 'the message published right after subscribe()');
    // On an open connection too: the next PHID, then a publish at once.
    await client.subscribe(['PHID-NEXT']);
    await post(gw.url('admin'), notification(['PHID-NEXT'], { n: 2 }));
    await until(() => messages.length === 2, 'the message on the second PHID');
  });

  it('subscribe - while the node is down, waits for the reconnect and its resubscribe; close() rejects one still waiting', async () => {
    const gw = await startGateway();
    const port = Number(new URL(gw.url('client')).port);
    const { client, messages, statuses } = track(connect(gw.url('client'), { transport, reconnect: { initialDelayMs: 100, maxDelayMs: 100 } }));
    await client.subscribe(['PHID-1']);
    await gw.close();
    await until(() => statuses.some((s) => s.state === 'reconnecting' && s.attempt >= 2), 'reconnect attempts');
    let resolved = false;
    const pending = client.subscribe(['PHID-2']).then(() => (resolved = true));
    await sleep(300);
    expect(resolved).toBe(false);
    const again = await startGateway(port);
    await pending;
    await post(again.url('admin'), notification(['PHID-2'], { n: 'after' }));
    await until(() => messages.length === 1, 'the message on the PHID subscribed while down');

    await again.close();
    await until(() => !client.isOpen, 'the loss');
    const waiting = client.subscribe(['PHID-3']);
    await client.close();
    await expect(waiting).rejects.toThrow(/closed before the subscription was in place/);
    await expect(client.subscribe(['PHID-4'])).rejects.toThrow(/closed/);
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

  it('aphlict: a pong answers the oldest ping, so the keepalive\'s pong does not resolve a subscribe sent after it', async () => {
    // A server that answers pings only when told, in order.
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    const pings: (() => void)[] = [];
    const frames: string[] = [];
    server.on('connection', (ws) =>
      ws.on('message', (d) => {
        const text = d.toString();
        frames.push(text);
        if (text === '{"command":"ping"}') pings.push(() => ws.send('{"type":"pong"}'));
      }),
    );
    try {
      const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const { client } = track(connect(url, { positions: false, pingIntervalMs: 100, pongTimeoutMs: 5_000, reconnect: false }));
      await client.waitForOpen();
      await until(() => pings.length === 1, 'the keepalive ping');
      let resolved = false;
      const subscribed = client.subscribe(['PHID-K']).then(() => (resolved = true));
      const subscribeAt = () => frames.indexOf('{"command":"subscribe","data":["PHID-K"]}');
      await until(() => subscribeAt() >= 0 && frames.slice(subscribeAt()).includes('{"command":"ping"}'), 'the subscribe and its ping');
      // The keepalive's pongs (every ping before the subscribe), and not the subscribe's.
      const before = frames.slice(0, subscribeAt()).filter((f) => f === '{"command":"ping"}').length;
      expect(before).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < before; i++) pings.shift()!();
      await sleep(50);
      expect(resolved).toBe(false);
      pings.shift()!(); // the subscribe's pong
      await subscribed;
      expect(resolved).toBe(true);
    } finally {
      for (const ws of server.clients) ws.terminate();
      await new Promise((r) => server.close(r));
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
