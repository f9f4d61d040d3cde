/**
 * The client's connection tokens, against small servers on 127.0.0.1 that check them as the
 * gateway does: a raw WebSocket server reading `?token=` at the upgrade (401 otherwise) and
 * speaking enough of Aphlict's protocol (pong, and it records subscribe and replay frames),
 * and a Socket.IO server whose middleware reads `auth.token` (connect_error `unauthorized`
 * otherwise). End-to-end tests against real gateways with client tokens come with the
 * gateway's wiring.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as IoServer, type Socket as IoSocket } from 'socket.io';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  connect,
  TidingsAuthError,
  TOKEN_EXPIRED_CLOSE_CODE,
  withToken,
  type ClientStatus,
  type TidingsClient,
} from './index';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A raw Aphlict-protocol server that accepts an upgrade only with a token it knows. */
interface RawServer {
  url: string;
  /** Tokens accepted at the upgrade. */
  accepted: Set<string>;
  /** Every upgrade request: its path, its token (or null), and whether it was let in. */
  upgrades: { path: string; token: string | null; admitted: boolean }[];
  /** Non-ping frames of every connection, in order, tagged with the connection's token. */
  frames: { token: string | null; command: string; data: unknown }[];
  sockets: Set<WebSocket>;
  close(): Promise<void>;
}

async function startRawServer(accepted: string[]): Promise<RawServer> {
  const http1 = http.createServer((_req, res) => {
    res.writeHead(501);
    res.end('HTTP/501 Use Websockets\n');
  });
  const wss = new WebSocketServer({ noServer: true });
  const state: RawServer = {
    url: '',
    accepted: new Set(accepted),
    upgrades: [],
    frames: [],
    sockets: new Set(),
    close: async () => {
      for (const ws of state.sockets) ws.terminate();
      http1.closeAllConnections();
      await new Promise((r) => wss.close(r));
      await new Promise((r) => http1.close(r));
    },
  };
  http1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url!, 'http://x');
    const token = url.searchParams.get('token');
    const admitted = token !== null && state.accepted.has(token);
    state.upgrades.push({ path: url.pathname, token, admitted });
    if (!admitted) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"error":"unauthorized"}');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      state.sockets.add(ws);
      ws.on('close', () => state.sockets.delete(ws));
      ws.on('message', (raw) => {
        const frame = JSON.parse(raw.toString()) as { command: string; data: unknown };
        if (frame.command === 'ping') return ws.send('{"type":"pong"}');
        state.frames.push({ token, command: frame.command, data: frame.data });
      });
    });
  });
  await new Promise<void>((r) => http1.listen(0, '127.0.0.1', r));
  state.url = `ws://127.0.0.1:${(http1.address() as AddressInfo).port}`;
  return state;
}

/** A Socket.IO server on Tidings' path whose middleware checks `auth.token`. */
interface IoTestServer {
  url: string;
  accepted: Set<string>;
  /** Every handshake's auth object, and whether it was let in. */
  handshakes: { auth: Record<string, unknown>; admitted: boolean }[];
  sockets: Set<IoSocket>;
  close(): Promise<void>;
}

async function startIoServer(accepted: string[]): Promise<IoTestServer> {
  const httpServer = http.createServer();
  const io = new IoServer(httpServer, { path: '/socket.io/' });
  const state: IoTestServer = {
    url: '',
    accepted: new Set(accepted),
    handshakes: [],
    sockets: new Set(),
    close: async () => {
      httpServer.closeAllConnections();
      await io.close();
    },
  };
  io.use((socket, next) => {
    const auth = socket.handshake.auth as Record<string, unknown>;
    const admitted = typeof auth.token === 'string' && state.accepted.has(auth.token);
    state.handshakes.push({ auth: { ...auth }, admitted });
    next(admitted ? undefined : new Error('unauthorized'));
  });
  io.on('connection', (socket) => {
    state.sockets.add(socket);
    socket.on('disconnect', () => state.sockets.delete(socket));
    socket.on('subscribe', (_data: unknown, ack: (a: unknown) => void) => ack({ ok: true }));
    socket.on('replay', (_data: unknown, ack: (a: unknown) => void) => ack({ ok: true, replayed: 0 }));
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  return state;
}

const clients: TidingsClient[] = [];
const servers: { close(): Promise<void> }[] = [];

function track(client: TidingsClient) {
  clients.push(client);
  const statuses: ClientStatus[] = [];
  const errors: Error[] = [];
  client.on('status', (s) => statuses.push(s));
  client.on('error', (e) => errors.push(e));
  return { client, statuses, errors };
}

/** A getToken() that hands out token-1, token-2, ... and counts its calls. */
function tokenSequence(prefix = 'token') {
  const given: string[] = [];
  const getToken = async () => {
    const token = `${prefix}-${given.length + 1}`;
    given.push(token);
    return token;
  };
  return { getToken, given };
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const FAST = { initialDelayMs: 50, maxDelayMs: 50, jitter: 0 };

describe('client tokens, raw transport', () => {
  it('token - a fixed token goes as ?token= on the WebSocket URL, after the instance path; client.url never shows it', async () => {
    const server = await startRawServer(['fixed-token']);
    servers.push(server);
    const { client } = track(connect(`${server.url}/ws/`, { instance: 'acme', token: 'fixed-token' }));
    await client.waitForOpen();
    expect(server.upgrades).toEqual([{ path: '/ws/~acme/', token: 'fixed-token', admitted: true }]);
    expect(client.url).toBe(`${server.url}/ws/`);
    // Positive control: without it, the same server refuses.
    const bare = track(connect(server.url, { reconnect: false }));
    await until(() => bare.client.status === 'closed', 'the refusal');
    expect(server.upgrades[1]).toEqual({ path: '/~default/', token: null, admitted: false });
    expect(bare.statuses[bare.statuses.length - 1]).toEqual({ state: 'closed', reason: 'refused: HTTP 401', auth: 'unauthorized' });
    expect(bare.errors.map((e) => (e as TidingsAuthError).code)).toEqual(['unauthorized']);
  });

  it('token - withToken adds or replaces the token parameter and keeps the rest of the URL', () => {
    expect(withToken('ws://h:1/~acme/', 'a.b.c')).toBe('ws://h:1/~acme/?token=a.b.c');
    expect(withToken('wss://h/ws/~acme/?x=1&token=old', 'new')).toBe('wss://h/ws/~acme/?x=1&token=new');
    expect(withToken('ws://h/~a/', 'a+b/c=')).toBe('ws://h/~a/?token=a%2Bb%2Fc%3D');
    expect(new URL(withToken('ws://h/~a/', 'a+b/c=')).searchParams.get('token')).toBe('a+b/c=');
    expect(withToken('ws://h/~a/', undefined)).toBe('ws://h/~a/');
  });

  it('token - getToken() is called before every attempt, and each connection carries the token it gave', async () => {
    const server = await startRawServer(['token-1', 'token-2', 'token-3']);
    servers.push(server);
    const tokens = tokenSequence();
    const { client } = track(connect(server.url, { getToken: tokens.getToken, reconnect: FAST }));
    await client.waitForOpen();
    for (const ws of server.sockets) ws.close(1001, 'going away');
    await until(() => server.upgrades.length === 2 && client.isOpen, 'the reconnect');
    expect(tokens.given).toEqual(['token-1', 'token-2']);
    expect(server.upgrades.map((u) => u.token)).toEqual(['token-1', 'token-2']);
  });

  it('token - a 401 at the upgrade is reported (status auth unauthorized, a TidingsAuthError) and retried with a fresh token', async () => {
    const server = await startRawServer(['token-3']);
    servers.push(server);
    const tokens = tokenSequence();
    const { client, statuses, errors } = track(connect(server.url, { getToken: tokens.getToken, reconnect: FAST }));
    await client.waitForOpen();
    expect(server.upgrades.map((u) => [u.token, u.admitted])).toEqual([['token-1', false], ['token-2', false], ['token-3', true]]);
    const refusals = statuses.filter((s) => s.state === 'reconnecting');
    expect(refusals).toHaveLength(2);
    for (const s of refusals) expect(s).toMatchObject({ state: 'reconnecting', reason: 'refused: HTTP 401', auth: 'unauthorized' });
    expect(errors).toHaveLength(2);
    expect(errors[0]).toBeInstanceOf(TidingsAuthError);
    expect(errors[0]).toMatchObject({ code: 'unauthorized', message: 'the server refused the token (refused: HTTP 401)' });
    for (const e of errors) expect(e.message).not.toContain('token-');
  });

  it('token - another refusal status is reported as such, without an auth label', async () => {
    const http1 = http.createServer();
    http1.on('upgrade', (_req, socket: Duplex) => socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\r\n'));
    await new Promise<void>((r) => http1.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => http1.close(() => r())) });
    const { client, statuses, errors } = track(
      connect(`ws://127.0.0.1:${(http1.address() as AddressInfo).port}`, { token: 't', reconnect: { ...FAST, maxAttempts: 0 } }),
    );
    await until(() => client.status === 'closed', 'giving up');
    expect(statuses[statuses.length - 1]).toEqual({ state: 'closed', reason: 'refused: HTTP 429' });
    expect(errors).toEqual([]);
  });

  it('token - a close with 4001 (token expired) fetches a new token, reconnects at once, resubscribes and asks for a replay', async () => {
    const server = await startRawServer(['token-1', 'token-2']);
    servers.push(server);
    const tokens = tokenSequence();
    const { client, statuses, errors } = track(
      connect(server.url, { getToken: tokens.getToken, reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 }, replayMarginMs: 1_000 }),
    );
    await client.waitForOpen();
    await client.subscribe(['PHID-A', 'PHID-B']);
    // This server ignores `positions`, as Aphlict does: the client replays by age.
    expect(server.frames).toEqual([
      { token: 'token-1', command: 'positions', data: true },
      { token: 'token-1', command: 'subscribe', data: ['PHID-A', 'PHID-B'] },
    ]);

    for (const ws of server.sockets) ws.close(TOKEN_EXPIRED_CLOSE_CODE, 'token expired');
    await until(() => server.frames.some((f) => f.command === 'replay') && client.isOpen, 'the replay after the reconnect');
    expect(tokens.given).toEqual(['token-1', 'token-2']);
    expect(statuses.find((s) => s.state === 'reconnecting')).toEqual({
      state: 'reconnecting',
      attempt: 1,
      delayMs: 0,
      reason: 'closed with 4001 token expired',
      auth: 'token_expired',
    });
    expect(statuses.filter((s) => s.state === 'open').pop()).toEqual({ state: 'open', reconnected: true });
    const after = server.frames.slice(2);
    expect(after.map((f) => [f.token, f.command])).toEqual([
      ['token-2', 'positions'],
      ['token-2', 'subscribe'],
      ['token-2', 'replay'],
    ]);
    expect(after[1].data).toEqual(['PHID-A', 'PHID-B']);
    const age = (after[2].data as { age: number }).age;
    expect(age).toBeGreaterThanOrEqual(1_000);
    expect(age).toBeLessThan(5_000);
    // An expired token is not an error.
    expect(errors).toEqual([]);
  });

  it('token - getToken() that throws, rejects, gives nothing or hangs fails the attempt (token_unavailable) and is asked again', async () => {
    const server = await startRawServer(['good']);
    servers.push(server);
    const answers: (() => string | Promise<string>)[] = [
      () => {
        throw new Error('session expired');
      },
      () => Promise.reject(new Error('backend down')),
      () => '',
      () => new Promise<string>(() => undefined),
      () => 'good',
    ];
    let calls = 0;
    const { client, statuses, errors } = track(
      connect(server.url, { getToken: () => answers[calls++](), connectTimeoutMs: 200, reconnect: FAST }),
    );
    await client.waitForOpen();
    expect(calls).toBe(5);
    const failures = statuses.filter((s): s is Extract<ClientStatus, { state: 'reconnecting' }> => s.state === 'reconnecting');
    expect(failures.map((s) => [s.auth, s.reason])).toEqual([
      ['token_unavailable', 'getToken failed: session expired'],
      ['token_unavailable', 'getToken failed: backend down'],
      ['token_unavailable', 'getToken failed: it gave no token (expected a non-empty string)'],
      ['token_unavailable', 'getToken failed: no token within 200 ms'],
    ]);
    expect(errors.map((e) => [e instanceof TidingsAuthError, (e as TidingsAuthError).code])).toEqual(Array(4).fill([true, 'token_unavailable']));
    // Nothing reached the server before a token was there.
    expect(server.upgrades.map((u) => u.token)).toEqual(['good']);
  });

  it('token - close() while getToken() runs connects nothing afterwards', async () => {
    const server = await startRawServer(['late']);
    servers.push(server);
    let give: ((t: string) => void) | undefined;
    const { client, statuses } = track(connect(server.url, { getToken: () => new Promise<string>((r) => (give = r)) }));
    await until(() => give !== undefined, 'getToken called');
    await client.close();
    give!('late');
    await sleep(200);
    expect(server.upgrades).toEqual([]);
    expect(statuses[statuses.length - 1]).toEqual({ state: 'closed', reason: 'closed by client' });
  });

  it('token - token and getToken together, an empty token or a getToken that is no function are refused at once', () => {
    expect(() => connect('ws://h/', { token: 't', getToken: () => 't' })).toThrow(/give token or getToken, not both/);
    expect(() => connect('ws://h/', { token: '' })).toThrow(/token must be a non-empty string/);
    expect(() => connect('ws://h/', { getToken: 'x' as never })).toThrow(/getToken must be a function/);
  });
});

describe('client tokens, Socket.IO', () => {
  it('token - the token goes in the handshake as auth {instance, token}, fresh from getToken() on every attempt', async () => {
    const server = await startIoServer(['sio-1', 'sio-2']);
    servers.push(server);
    const tokens = tokenSequence('sio');
    const { client, statuses } = track(
      connect(server.url, { transport: 'socket.io', instance: 'acme', getToken: tokens.getToken, reconnect: FAST }),
    );
    await client.waitForOpen();
    await client.subscribe(['PHID-S']);
    // The server ends the connection (as it would when the token expires).
    for (const socket of server.sockets) socket.disconnect(true);
    await until(() => client.isOpen && server.handshakes.length === 2, 'the reconnect');
    expect(server.handshakes).toEqual([
      { auth: { instance: 'acme', token: 'sio-1', positions: true }, admitted: true },
      { auth: { instance: 'acme', token: 'sio-2', positions: true }, admitted: true },
    ]);
    expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ delayMs: 0, reason: 'disconnected: io server disconnect' });
    expect(client.stats.reconnects).toBe(1);
  });

  it("token - connect_error 'unauthorized' is reported (status auth unauthorized, a TidingsAuthError) and retried with a fresh token", async () => {
    const server = await startIoServer(['sio-2']);
    servers.push(server);
    const tokens = tokenSequence('sio');
    const { client, statuses, errors } = track(connect(server.url, { transport: 'socket.io', getToken: tokens.getToken, reconnect: FAST }));
    await client.waitForOpen();
    expect(server.handshakes.map((h) => [h.auth.token, h.admitted])).toEqual([['sio-1', false], ['sio-2', true]]);
    expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ reason: 'connect error: unauthorized', auth: 'unauthorized' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ name: 'TidingsAuthError', code: 'unauthorized' });
  });

  it('token - without a token the handshake carries the instance (and the request for positions) alone', async () => {
    const server = await startIoServer([]);
    servers.push(server);
    const { client } = track(connect(server.url, { transport: 'socket.io', instance: 'acme', reconnect: false }));
    await until(() => client.status === 'closed', 'the refusal');
    const plain = track(connect(server.url, { transport: 'socket.io', instance: 'acme', reconnect: false, positions: false }));
    await until(() => plain.client.status === 'closed', 'the second refusal');
    expect(server.handshakes).toEqual([
      { auth: { instance: 'acme', positions: true }, admitted: false },
      { auth: { instance: 'acme' }, admitted: false },
    ]);
  });
});
