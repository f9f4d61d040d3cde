/**
 * Whatever goes wrong while serving one socket stays with that socket: a Gateway in this
 * process (an uncaught exception or unhandled rejection here fails the test run), real
 * WebSockets and Socket.IO clients. The process-level regression with Redis history lives
 * in test/fuzz.
 */
import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';
import { io } from 'socket.io-client';
import { MemoryHistory } from '@tidings/history';
import { resolveConfig, silentLogger, type Envelope } from '@tidings/protocol';
import { connectSocket, messagesOf, post, sleep, type TestSocket } from '@tidings/testing';
import { Gateway } from '../gateway';
import { RawSocket } from './raw-socket';

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    ...extra,
  });
}

/** A real memory history whose reads wait for the test to let them through. */
class GatedHistory extends MemoryHistory {
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => undefined;
  reads = 0;
  close_(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  open(): void {
    this.openGate();
  }
  override async recent(instance: string, window: number): Promise<Envelope[]> {
    this.reads++;
    await this.gate;
    return super.recent(instance, window);
  }
}

const sockets: TestSocket[] = [];
async function socket(url: string): Promise<TestSocket> {
  const s = await connectSocket(url);
  sockets.push(s);
  return s;
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** What escaped to the process: in the gateway process each of these would be a crash or a defect. */
const escaped: unknown[] = [];
const onEscape = (reason: unknown) => escaped.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onEscape);
  process.on('uncaughtException', onEscape);
});
afterAll(() => {
  process.off('unhandledRejection', onEscape);
  process.off('uncaughtException', onEscape);
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.ws.terminate();
  expect(escaped.splice(0)).toEqual([]);
});

describe('containment: raw sockets', () => {
  let gw: Gateway;
  let history: GatedHistory;
  beforeEach(async () => {
    history = new GatedHistory();
    gw = await new Gateway({ config: config(), logger: silentLogger, history }).start();
  });
  afterEach(() => gw.close());

  it('drops the frames queued behind a replay when the socket resets during it, and keeps serving', async () => {
    for (let i = 0; i < 50; i++) await post(gw.url('admin'), { subscribers: ['PHID-A'], key: i });
    const control = await socket(gw.url('client'));
    control.send('subscribe', ['PHID-C']);
    await control.roundTrip();

    history.close_();
    const victim = await socket(gw.url('client'));
    victim.send('subscribe', ['PHID-A']);
    victim.send('replay', { age: 60_000 });
    victim.send('subscribe', ['PHID-B']); // queued behind the replay
    await until(() => history.reads === 1, 'the replay to start reading');
    const membersBefore = gw.node.hub.memberCount();
    (victim.ws as unknown as { _socket: TcpSocket })._socket.resetAndDestroy();
    await until(() => gw.node.hub.memberCount() === membersBefore - 1, 'the server to see the reset');
    history.open(); // the replay resumes after its socket is gone, with a frame still queued
    await sleep(50);

    expect(escaped).toEqual([]);
    expect(Object.fromEntries(gw.node.counters.internalErrors)).toEqual({});
    const receipt = await post(gw.url('admin'), { subscribers: ['PHID-C'], key: 'after' });
    expect(receipt.status).toBe(200);
    await control.waitFor((r) => messagesOf(r).length === 1, 2_000, 'the control message');
  });

  it('a handler that throws closes that socket only, logged and counted', async () => {
    const bystander = await socket(gw.url('client'));
    bystander.send('subscribe', ['PHID-X']);
    await bystander.roundTrip();
    const victim = await socket(gw.url('client'));
    const spy = jest.spyOn(gw.node.hub, 'subscribe').mockImplementationOnce(() => {
      throw new Error('injected fault');
    });
    victim.send('subscribe', ['PHID-X']);
    const { code } = await victim.closed;
    spy.mockRestore();
    expect(code).toBe(1006); // cut, not closed politely: the socket's state is not trusted
    expect(gw.node.counters.internalErrors.get('raw_socket')).toBe(1);
    expect(gw.node.hub.memberCount()).toBe(1);
    await post(gw.url('admin'), { subscribers: ['PHID-X'], key: 'still' });
    await bystander.waitFor((r) => messagesOf(r).length === 1, 2_000, 'the bystander message');
  });

  it('a recipient whose send throws does not keep the message from the others', async () => {
    const first = await socket(gw.url('client'));
    const second = await socket(gw.url('client'));
    for (const s of [first, second]) {
      s.send('subscribe', ['PHID-F']);
      await s.roundTrip();
    }
    // The first write of the fan-out throws, whichever member the hub reaches first.
    const spy = jest.spyOn(RawSocket.prototype as unknown as { write(frame: Buffer): void }, 'write').mockImplementationOnce(() => {
      throw new Error('injected write fault');
    });
    await post(gw.url('admin'), { subscribers: ['PHID-F'], key: 'fanout' });
    await until(() => gw.node.counters.internalErrors.get('raw_socket') === 1, 'the contained fault');
    spy.mockRestore();
    const delivered = [first, second].filter((s) => messagesOf(s.received).length === 1);
    expect(delivered).toHaveLength(1);
    expect(gw.node.hub.memberCount()).toBe(1);
  });

  it('a client that resets while its upgrade is refused does not take the process down', async () => {
    await gw.close();
    gw = await new Gateway({ config: config({ limits: { maxConnections: 1 } }), logger: silentLogger, history }).start();
    const holder = await socket(gw.url('client'));
    const port = Number(new URL(gw.url('client')).port);
    for (let i = 0; i < 100; i++) {
      const s = tcpConnect(port, '127.0.0.1');
      s.on('error', () => undefined);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      s.resetAndDestroy();
    }
    await sleep(100);
    expect(gw.node.counters.rejected.get('connection_limit')).toBeGreaterThan(0);
    await holder.roundTrip();
  });
});

describe('containment: Socket.IO', () => {
  let gw: Gateway;
  beforeEach(async () => {
    gw = await new Gateway({ config: config(), logger: silentLogger }).start();
  });
  afterEach(() => gw.close());

  it('a throwing handler closes that socket only, logged and counted', async () => {
    const url = gw.url('client').replace(/^ws/, 'http');
    const open = async () => {
      const s = io(url, { path: '/socket.io/', transports: ['websocket'], reconnection: false, forceNew: true });
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      return s;
    };
    const bystander = await open();
    const victim = await open();
    try {
      const received: unknown[] = [];
      bystander.on('message', (m: unknown) => received.push(m));
      expect(await bystander.timeout(5_000).emitWithAck('subscribe', ['PHID-S'])).toEqual({ ok: true });
      const socketio = gw.socketio!;
      const spy = jest.spyOn(socketio, 'reject').mockImplementationOnce(() => {
        throw new Error('injected fault');
      });
      const gone = new Promise<string>((resolve) => victim.once('disconnect', (reason) => resolve(reason)));
      victim.emit('no-such-event', 1);
      expect(await gone).toBe('transport close');
      spy.mockRestore();
      expect(gw.node.counters.internalErrors.get('socketio')).toBe(1);
      await post(gw.url('admin'), { subscribers: ['PHID-S'], key: 'sio' });
      await until(() => received.length === 1, 'the bystander message');
    } finally {
      bystander.close();
      victim.close();
    }
  });
});

describe('replays: one in flight per socket', () => {
  it('refuses a Socket.IO replay asked while the socket has one running, and serves the next', async () => {
    const history = new GatedHistory();
    const gw = await new Gateway({ config: config(), logger: silentLogger, history }).start();
    const s = io(gw.url('client').replace(/^ws/, 'http'), { path: '/socket.io/', transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      await post(gw.url('admin'), { subscribers: ['PHID-R'], key: 1 });
      expect(await s.timeout(5_000).emitWithAck('subscribe', ['PHID-R'])).toEqual({ ok: true });
      history.close_();
      const first = s.timeout(5_000).emitWithAck('replay', { age: 60_000 });
      await until(() => history.reads === 1, 'the first replay to read');
      expect(await s.timeout(5_000).emitWithAck('replay', { age: 60_000 })).toMatchObject({ ok: false, error: 'replay_in_progress' });
      expect(history.reads).toBe(1); // the refused one read nothing
      history.open();
      expect(await first).toEqual({ ok: true, replayed: 1 });
      expect(await s.timeout(5_000).emitWithAck('replay', { age: 60_000 })).toEqual({ ok: true, replayed: 1 });
      expect(gw.socketio!.status().rejected).toMatchObject({ replay_in_progress: 1 });
    } finally {
      s.close();
      await gw.close();
    }
  });

  it('queues a raw replay behind the one running: one history read at a time, answered in order', async () => {
    const history = new GatedHistory();
    const gw = await new Gateway({ config: config(), logger: silentLogger, history }).start();
    try {
      await post(gw.url('admin'), { subscribers: ['PHID-R'], key: 1 });
      const s = await socket(gw.url('client'));
      s.send('subscribe', ['PHID-R']);
      await s.roundTrip();
      history.close_();
      s.send('replay', { age: 60_000 });
      s.send('replay', { age: 60_000 });
      s.send('ping');
      await until(() => history.reads === 1, 'the first replay to read');
      await sleep(50);
      expect(history.reads).toBe(1);
      history.open();
      await s.waitFor((r) => r.filter((f) => f.type === 'pong').length === 2, 2_000, 'the pong');
      expect(history.reads).toBe(2);
      expect(s.received.map((f) => f.type ?? f.key)).toEqual(['pong', 1, 1, 'pong']);
      expect(gw.node.counters.replayEntriesSent).toBe(2);
    } finally {
      await gw.close();
    }
  });
});
