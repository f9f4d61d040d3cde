/**
 * A mixed cluster during a migration: a Tidings gateway whose admin port requires tokens,
 * and an Aphlict peer that cannot send one, allowed by its address (auth.adminAllow). The
 * Aphlict-like peer relays from 127.0.0.2; the gateway allows exactly that address.
 */
import { connectSocket, freePort, messagesOf, post, sleep, spawnGateway, startAphlictPeer, type AphlictPeer, type GatewayProcess, type TestSocket } from '@tidings/testing';

const TOKEN = 'mixed-mesh-admin-token-012345';
let gateway: GatewayProcess;
let aphlict: AphlictPeer;
let socket: TestSocket;

beforeAll(async () => {
  const adminPort = await freePort();
  aphlict = await startAphlictPeer({ peers: [adminPort], localAddress: '127.0.0.2' });
  gateway = await spawnGateway({
    adminPort,
    config: {
      auth: { adminTokens: [TOKEN], adminAllow: ['127.0.0.2'] },
      cluster: [
        { host: '127.0.0.1', port: adminPort, protocol: 'http' },
        { host: '127.0.0.1', port: aphlict.port, protocol: 'http' },
      ],
    },
  });
  socket = await connectSocket(gateway.clientUrl);
  socket.send('subscribe', ['PHID-USER-mixed']);
  await socket.roundTrip();
});
afterAll(async () => {
  socket.ws.terminate();
  await gateway.stop('SIGINT');
  await aphlict.close();
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Publishes to the Aphlict peer as Phorge would. */
async function publishToAphlict(key: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${aphlict.port}/?instance=default`, { method: 'POST', body: JSON.stringify({ subscribers: ['PHID-USER-mixed'], key }) });
  expect(res.status).toBe(200);
}

it('takes the relay of an Aphlict peer allowed by address, without a token', async () => {
  await publishToAphlict('from-aphlict');
  await socket.waitFor((r) => messagesOf(r).some((m) => m.key === 'from-aphlict'), 5_000, 'the relayed message');
  const delivered = messagesOf(socket.received).find((m) => m.key === 'from-aphlict')!;
  expect(delivered.touched).toEqual([aphlict.fingerprint, gateway.fingerprint]);
  await until(() => aphlict.relayed.length === 1, 'the receipt of the relay');
  expect(aphlict.relayed).toEqual([{ to: gateway.adminPort, status: 200 }]);
});

it('relays what it accepts to the Aphlict peer, which takes the bearer header as any other', async () => {
  expect((await post(gateway.adminUrl, { subscribers: ['PHID-USER-mixed'], key: 'from-tidings' }, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  await until(() => aphlict.received.some((r) => r.message.key === 'from-tidings'), 'the message at the Aphlict peer');
  const got = aphlict.received.find((r) => r.message.key === 'from-tidings')!;
  expect(got.message.touched).toEqual([gateway.fingerprint]);
  expect(got.headers.authorization).toBe(`Bearer ${TOKEN}`);
  // The peer relays it back with its own fingerprint added; the gateway sees itself in touched.
  await until(() => aphlict.relayed.length === 2, 'the relay back');
  await socket.roundTrip();
  expect(messagesOf(socket.received).filter((m) => m.key === 'from-tidings')).toHaveLength(1);
});

it('refuses the same peer from an address that is not allowed (the control)', async () => {
  const stranger = await startAphlictPeer({ peers: [gateway.adminPort], localAddress: '127.0.0.3' });
  try {
    await fetch(`http://127.0.0.1:${stranger.port}/`, { method: 'POST', body: JSON.stringify({ subscribers: ['PHID-USER-mixed'], key: 'stranger' }) });
    await until(() => stranger.relayed.length === 1, 'the stranger relay');
    expect(stranger.relayed[0].status).toBe(401);
  } finally {
    await stranger.close();
  }
});
