/**
 * The relay between gateway processes whose admin ports require tokens (`auth.adminTokens`):
 * a `cluster` entry's `path: "/TOKEN"` (Phorge's form) and the node's own first token sent as
 * `Authorization: Bearer` both get a relay in; a peer that holds neither refuses it with 401,
 * which the sender counts; and no token ever reaches a log line or `/status/`.
 *
 * NEEDS THE LEAD'S ADMIN-PORT WIRING (admin-app.ts enforcing auth.adminTokens): until it
 * lands the admin ports let everything in, and the 401 checks below fail.
 *
 *   A: tokens [TA];     cluster [A itself, B with path /TB]
 *   B: tokens [TB, TS]; no cluster; a socket subscribed to PHID
 *   C: tokens [TS];     cluster [C itself, B (bearer TS: accepted), A (bearer TS: refused)]
 */
import { connectSocket, freePort, messagesOf, notification, post, sleep, spawnGateway, type GatewayProcess, type TestSocket } from '@tidings/testing';
import type { RelayPeerStatus } from './relay-mesh';

const TA = 'node-a-admin-token-0123456789';
const TB = 'node-b-admin-token-0123456789';
const TS = 'shared-admin-token-0123456789';
const PHID = 'PHID-USER-relay-auth';

let a: GatewayProcess;
let b: GatewayProcess;
let c: GatewayProcess;
let socket: TestSocket;

async function status(node: GatewayProcess, token: string): Promise<{ code: number; body: Record<string, unknown> }> {
  const res = await fetch(`${node.adminUrl}/status/`, { headers: { Authorization: `Bearer ${token}` } });
  return { code: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function peers(node: GatewayProcess, token: string): Promise<RelayPeerStatus[]> {
  return (await status(node, token)).body['relay.peers'] as RelayPeerStatus[];
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  const [aAdmin, bAdmin, cAdmin] = [await freePort(), await freePort(), await freePort()];
  const peer = (port: number, path?: string) => ({ host: '127.0.0.1', port, protocol: 'http', ...(path ? { path } : {}) });
  b = await spawnGateway({ adminPort: bAdmin, config: { auth: { adminTokens: [TB, TS] } } });
  a = await spawnGateway({ adminPort: aAdmin, config: { auth: { adminTokens: [TA] }, cluster: [peer(aAdmin), peer(bAdmin, `/${TB}`)] } });
  c = await spawnGateway({ adminPort: cAdmin, config: { auth: { adminTokens: [TS] }, cluster: [peer(cAdmin), peer(bAdmin), peer(aAdmin)] } });
  socket = await connectSocket(`${b.clientUrl}/`);
  socket.send('subscribe', [PHID]);
  await socket.roundTrip();
}, 60_000);

afterAll(async () => {
  await socket?.close();
  await Promise.all([a, b, c].map((n) => n?.kill()));
});

describe('relay with admin tokens (needs the admin-port wiring)', () => {
  it('relay auth - the admin ports really require their tokens (positive control for what follows)', async () => {
    expect((await post(b.adminUrl, notification(['PHID-nobody']))).status).toBe(401);
    expect((await post(b.adminUrl, notification(['PHID-nobody']), { headers: { Authorization: `Bearer ${TA}` } })).status).toBe(401);
    expect((await post(b.adminUrl, notification(['PHID-nobody']), { headers: { Authorization: `Bearer ${TS}` } })).status).toBe(200);
  });

  it('relay auth - a cluster entry with path /TOKEN relays into a token-guarded peer, and the node still recognises itself', async () => {
    const msg = notification([PHID], { from: 'a' });
    expect((await post(a.adminUrl, msg, { headers: { Authorization: `Bearer ${TA}` } })).status).toBe(200);
    await socket.waitFor((r) => messagesOf(r).some((m) => m.from === 'a'), 10_000, "A's message on B");
    await until(async () => (await peers(a, TA)).every((p) => p.state === 'self' || p.state === 'up'), "A's peers settled");
    const [self, toB] = await peers(a, TA);
    expect(self).toMatchObject({ state: 'self', fingerprint: a.fingerprint });
    expect(toB).toMatchObject({ peer: `127.0.0.1:${b.adminPort}/REDACTED`, state: 'up', sent: 1, failed: 0, fingerprint: b.fingerprint });
  });

  it("relay auth - the node's first admin token goes as Authorization: Bearer; a peer holding it accepts, one without it answers 401 (counted)", async () => {
    const msg = notification([PHID], { from: 'c' });
    expect((await post(c.adminUrl, msg, { headers: { Authorization: `Bearer ${TS}` } })).status).toBe(200);
    await socket.waitFor((r) => messagesOf(r).some((m) => m.from === 'c'), 10_000, "C's message on B");
    await until(async () => (await peers(c, TS))[2].failed >= 1, "A's refusal");
    const [self, toB, toA] = await peers(c, TS);
    expect(self).toMatchObject({ state: 'self', fingerprint: c.fingerprint });
    expect(toB).toMatchObject({ peer: `127.0.0.1:${b.adminPort}`, state: 'up', sent: 1, failed: 0 });
    expect(toA).toMatchObject({ peer: `127.0.0.1:${a.adminPort}`, state: 'up', sent: 0, failed: 1, lastError: 'HTTP 401' });
    // Each message reached B's socket once.
    expect(messagesOf(socket.received).filter((m) => m.from === 'c')).toHaveLength(1);
  });

  it('relay auth - no token appears in any node log line or in /status/', async () => {
    const logged = JSON.stringify([a.logs, b.logs, c.logs]);
    // Positive control: the lines are there (the relay's start line names the redacted peer).
    expect(logged).toContain(`127.0.0.1:${b.adminPort}/REDACTED`);
    for (const token of [TA, TB, TS]) {
      expect(logged).not.toContain(token);
      for (const [node, t] of [[a, TA], [b, TB], [c, TS]] as const) expect(JSON.stringify((await status(node, t)).body)).not.toContain(token);
    }
  });
});
