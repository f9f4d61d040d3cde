/**
 * The client port with auth.clientTokens.mode "required", against real gateway processes:
 * a signed connection token lists what a connection may subscribe to. Raw sockets carry
 * it as ?token= or a bearer header on the upgrade, Socket.IO as auth.token; without a
 * valid one the raw upgrade gets 401 before it happens and Socket.IO a connect_error
 * "unauthorized". PHIDs the token does not cover are ignored (raw) or refused in the ack
 * (Socket.IO); at exp the connection is closed (4001 on raw sockets).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { SignJWT, importPKCS8 } from 'jose';
import { mintClientToken } from '@tidings/auth';
import { connectSocket, messagesOf, post, sleep, spawnGateway, type GatewayProcess, type TestSocket } from '@tidings/testing';

const SECRET = 'a-client-token-secret-of-32-chars!!';
const gateways: GatewayProcess[] = [];
const sockets: TestSocket[] = [];
afterAll(async () => {
  for (const s of sockets) s.ws.terminate();
  await Promise.all(gateways.map((g) => g.stop('SIGINT')));
});

async function gateway(auth: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<GatewayProcess> {
  const g = await spawnGateway({ config: { auth: { clientTokens: { mode: 'required', ...auth } }, ...extra } });
  gateways.push(g);
  return g;
}

/** The status of a refused upgrade, or 101 when it opened (then closed at once). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
  });
}

const token = (phids: string[], extra: Partial<Parameters<typeof mintClientToken>[0]> = {}) =>
  mintClientToken({ secret: SECRET, phids, ttlSeconds: 60, sub: 'user-1', ...extra });

async function socketWith(url: string): Promise<TestSocket> {
  const s = await connectSocket(url);
  sockets.push(s);
  return s;
}

describe('client tokens: raw sockets', () => {
  let g: GatewayProcess;
  beforeAll(async () => {
    g = await gateway({ hmacSecret: SECRET });
  });

  it('refuses an upgrade without a valid token with 401, before the upgrade', async () => {
    expect(await upgradeStatus(g.clientUrl)).toBe(401);
    expect(await upgradeStatus(`${g.clientUrl}/?token=garbage`)).toBe(401);
    expect(await upgradeStatus(`${g.clientUrl}/?token=${await mintClientToken({ secret: 'another-secret-that-is-32-chars-long', phids: ['*'], ttlSeconds: 60 })}`)).toBe(401);
    expect(await upgradeStatus(`${g.clientUrl}/?token=${await token(['*'], { ttlSeconds: 60, now: Date.now() - 120_000 })}`)).toBe(401);
    // alg "none": an unsigned token naming any PHID.
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ phids: ['*'], exp: 9_999_999_999 })).toString('base64url')}.`;
    expect(await upgradeStatus(`${g.clientUrl}/?token=${none}`)).toBe(401);
    // A token bound to another instance.
    expect(await upgradeStatus(`${g.clientUrl}/~acme/?token=${await token(['*'], { instance: 'other' })}`)).toBe(401);
    const status = (await (await fetch(`${g.adminUrl}/status/`)).json()) as { 'messages.rejected': Record<string, number> };
    expect(status['messages.rejected']).toMatchObject({ token_missing: 1, token_malformed: 1, token_bad_signature: 1, token_expired: 1, token_wrong_algorithm: 1, token_wrong_instance: 1 });
  });

  it('accepts a token as ?token= or as a bearer header, and lets it subscribe only to what it lists', async () => {
    const t = await token(['PHID-USER-me', 'PHID-PROJ-*']);
    expect(await upgradeStatus(g.clientUrl, { Authorization: `Bearer ${t}` })).toBe(101);
    const s = await socketWith(`${g.clientUrl}/?token=${t}`);
    s.send('subscribe', ['PHID-USER-me', 'PHID-USER-someone-else', 'PHID-PROJ-abc']);
    await s.roundTrip();
    for (const phid of ['PHID-USER-someone-else', 'PHID-USER-me', 'PHID-PROJ-abc']) await post(g.adminUrl, { subscribers: [phid], key: phid });
    await s.waitFor((r) => messagesOf(r).length === 2, 5_000, 'the allowed messages');
    await s.roundTrip();
    expect(messagesOf(s.received).map((m) => m.key)).toEqual(['PHID-USER-me', 'PHID-PROJ-abc']);
    // Replay returns only what the connection may see, too.
    s.send('replay', { age: 60_000 });
    await s.waitFor((r) => messagesOf(r).length === 4, 5_000, 'the replay');
    await s.roundTrip();
    expect(messagesOf(s.received).map((m) => m.key)).toEqual(['PHID-USER-me', 'PHID-PROJ-abc', 'PHID-USER-me', 'PHID-PROJ-abc']);
    const status = (await (await fetch(`${g.adminUrl}/status/`)).json()) as { 'messages.rejected': Record<string, number> };
    expect(status['messages.rejected'].forbidden_phid).toBe(1);
  });

  it('closes a connection with 4001 when its token expires', async () => {
    const s = await socketWith(`${g.clientUrl}/?token=${await token(['*'], { ttlSeconds: 1 })}`);
    await s.roundTrip();
    const { code } = await s.closed;
    expect(code).toBe(4001);
  });

  it('never logs a token', async () => {
    const t = await token(['*']);
    await upgradeStatus(`${g.clientUrl}/?token=${t}x`);
    const text = JSON.stringify(g.logs) + g.stderr();
    expect(g.logs.some((l) => String(l.msg).startsWith('connection refused: connection token refused'))).toBe(true);
    expect(text).not.toContain(t.slice(0, 40));
  });
});

describe('client tokens: Socket.IO', () => {
  it('refuses a handshake without a valid token, filters subscribes in the ack, and disconnects at exp', async () => {
    const g = await gateway({ hmacSecret: SECRET });
    const url = g.clientUrl.replace(/^ws/, 'http');
    const open = (auth: Record<string, unknown>) => {
      const s = io(url, { path: '/socket.io/', auth, transports: ['websocket'], reconnection: false, forceNew: true });
      return new Promise<typeof s>((resolve, reject) => {
        s.once('connect', () => resolve(s));
        s.once('connect_error', (err) => {
          s.close();
          reject(err);
        });
      });
    };
    await expect(open({})).rejects.toThrow('unauthorized');
    await expect(open({ token: 'x.y.z' })).rejects.toThrow('unauthorized');
    const s = await open({ token: await token(['PHID-USER-me'], { ttlSeconds: 2 }) });
    try {
      const ack = await s.timeout(5_000).emitWithAck('subscribe', ['PHID-USER-me', 'PHID-USER-other']);
      expect(ack).toMatchObject({ ok: false, error: 'forbidden', refused: ['PHID-USER-other'], added: 1 });
      const got: unknown[] = [];
      s.on('message', (m: unknown) => got.push(m));
      await post(g.adminUrl, { subscribers: ['PHID-USER-other'], key: 'no' });
      await post(g.adminUrl, { subscribers: ['PHID-USER-me'], key: 'yes' });
      for (let i = 0; i < 100 && got.length === 0; i++) await sleep(20);
      expect(got).toEqual([expect.objectContaining({ key: 'yes' })]);
      const reason = await new Promise<string>((resolve) => s.once('disconnect', (r) => resolve(r)));
      expect(reason).toBe('io server disconnect');
    } finally {
      s.close();
    }
  });
});

describe('client tokens: public keys', () => {
  it.each([
    ['RS256', 'rsa', { modulusLength: 2048 }],
    ['ES256', 'ec', { namedCurve: 'P-256' }],
    ['EdDSA', 'ed25519', {}],
  ] as const)('verifies %s tokens with auth.clientTokens.publicKeyFile', async (alg, type, options) => {
    const { publicKey, privateKey } = generateKeyPairSync(type as 'rsa', options as { modulusLength: number });
    const dir = mkdtempSync(join(tmpdir(), 'tidings-key-'));
    const file = join(dir, 'public.pem');
    writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }));
    const g = await gateway({ publicKeyFile: file, issuer: 'phorge', audience: 'tidings' });
    const key = await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), alg);
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT({ phids: ['*'], ...claims }).setProtectedHeader({ alg }).setIssuer('phorge').setAudience('tidings').setExpirationTime('1m').sign(key);
    expect(await upgradeStatus(`${g.clientUrl}/?token=${await sign({})}`)).toBe(101);
    const wrongIssuer = await new SignJWT({ phids: ['*'] }).setProtectedHeader({ alg }).setIssuer('other').setAudience('tidings').setExpirationTime('1m').sign(key);
    expect(await upgradeStatus(`${g.clientUrl}/?token=${wrongIssuer}`)).toBe(401);
    // An HS256 token is refused whatever its secret: only the configured key's algorithm counts.
    expect(await upgradeStatus(`${g.clientUrl}/?token=${await token(['*'])}`)).toBe(401);
  });
});
