/**
 * The delivery fast paths lean on private internals of ws (the Sender's state and
 * sendFrame, Sender.frame, the socket's `_socket`) and of engine.io (the WebSocket
 * transport's `socket.bufferedAmount` and `terminate`). package.json pins both packages to
 * the versions these tests ran against; these tests fail when an upgrade makes the fast
 * path fall back silently, break its bytes, or blind the Socket.IO slow-reader bound (the
 * raw one reads ws's public bufferedAmount; gateway.spec's slow-reader test covers it).
 */
import { io } from 'socket.io-client';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { connectSocket, messagesOf, post, sleep } from '@tidings/testing';
import { Gateway } from '../gateway';

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    ...extra,
  });
}

describe('fast paths over private internals', () => {
  let gw: Gateway;
  afterEach(() => gw.close());

  it('ws: a live delivery to idle sockets goes through the pre-encoded frame, byte for byte', async () => {
    gw = await new Gateway({ config: config(), logger: silentLogger }).start();
    const sockets = await Promise.all([1, 2, 3].map(() => connectSocket(gw.url('client'))));
    for (const s of sockets) {
      s.send('subscribe', ['PHID-FAST']);
      await s.roundTrip();
    }
    const message = { subscribers: ['PHID-FAST'], text: 'héllo ✓ 🎉', n: 1 };
    await post(gw.url('admin'), message);
    for (const s of sockets) await s.waitFor((r) => messagesOf(r).length === 1, 2_000, 'the message');
    const c = gw.node.counters;
    expect(c.rawFastSends).toBe(3);
    expect(c.rawQueuedSends).toBe(0);
    for (const s of sockets) {
      expect(messagesOf(s.received)[0]).toEqual({ ...message, touched: [gw.node.fingerprint] });
      s.ws.terminate();
    }
  });

  it('engine.io: a WebSocket transport exposes the bufferedAmount and terminate() the slow-reader bound reads', async () => {
    gw = await new Gateway({ config: config(), logger: silentLogger }).start();
    const client = io(gw.url('client').replace(/^ws/, 'http'), { path: '/socket.io/', transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('connect_error', reject);
      });
      await sleep(20);
      const local = [...gw.socketio!.io.of('/').sockets.values()][0];
      const t = local.conn.transport as unknown as { name: string; socket?: { bufferedAmount?: unknown; terminate?: unknown } };
      expect(t.name).toBe('websocket');
      expect(typeof t.socket?.bufferedAmount).toBe('number');
      expect(typeof t.socket?.terminate).toBe('function');
    } finally {
      client.close();
    }
  });
});
