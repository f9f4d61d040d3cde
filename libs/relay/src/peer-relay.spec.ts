import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MESSAGE_ID_HEADER, type Envelope } from '@tidings/protocol';
import { PeerRelay, RelayOptionsError, type PeerRelayOptions } from './peer-relay';

const OWN = 'ownFingerprint00';

interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/** A real HTTP server on 127.0.0.1 standing in for a peer's admin port. */
interface PeerServer {
  port: number;
  requests: SeenRequest[];
  connections: number;
  /** Requests being handled right now, and the most seen at once. */
  open: number;
  maxOpen: number;
  close(): Promise<void>;
}

type Handler = (req: SeenRequest, res: http.ServerResponse) => void;

const receipt = (fingerprint: string): Handler => (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ fingerprint }));
};

async function startPeerServer(handler: Handler, port = 0): Promise<PeerServer> {
  const server = http.createServer();
  const state: PeerServer = {
    port: 0,
    requests: [],
    connections: 0,
    open: 0,
    maxOpen: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  server.on('connection', () => state.connections++);
  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    res.on('close', () => state.open--);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      state.requests.push(seen);
      handler(seen, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  return state;
}

/** A port nothing listens on: bound, then closed. */
async function deadPort(): Promise<number> {
  const s = await startPeerServer(() => undefined);
  await s.close();
  return s.port;
}

let counter = 0;
function envelope(extra: Record<string, unknown> = {}, instance = 'default', touched: string[] = [OWN]): Envelope {
  counter++;
  const message = { type: 'notification', key: String(counter), subscribers: ['PHID-USER-1'], ...extra, touched };
  return { id: `id-${counter}`, instance, subscribers: message.subscribers, frame: JSON.stringify(message), acceptedAt: Date.now() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, timeoutMs = 3_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const servers: PeerServer[] = [];
const relays: PeerRelay[] = [];

async function peerServer(handler: Handler, port?: number): Promise<PeerServer> {
  const s = await startPeerServer(handler, port);
  servers.push(s);
  return s;
}

function relayTo(ports: number[], options: Partial<PeerRelayOptions> = {}): PeerRelay {
  const relay = new PeerRelay({ peers: ports.map((port) => ({ host: '127.0.0.1', port })), fingerprint: OWN, ...options });
  relays.push(relay);
  return relay;
}

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('PeerRelay', () => {
  it('relay - posts the frame to /?instance= with JSON headers, byte length and the message id', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port]);
    const env = envelope({}, 'acme corp');
    relay.send(env, [OWN]);
    await until(() => peer.requests.length === 1 && relay.status()[0].sent === 1);
    const [req] = peer.requests;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/?instance=acme%20corp');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers[MESSAGE_ID_HEADER]).toBe(env.id);
    expect(req.body.toString('utf8')).toBe(env.frame);
    expect(JSON.parse(req.body.toString('utf8')).touched).toEqual([OWN]);
    expect(relay.status()[0]).toMatchObject({ peer: `127.0.0.1:${peer.port}`, protocol: 'http', state: 'up', sent: 1, failed: 0, fingerprint: 'peerA' });
  });

  it('relay - send() settles once the request is written, without waiting for the answer', async () => {
    let answer: (() => void) | undefined;
    const peer = await peerServer((_req, res) => {
      answer = () => receipt('peerA')(_req, res);
    });
    const relay = relayTo([peer.port]);
    const started = Date.now();
    await relay.send(envelope(), [OWN]);
    expect(Date.now() - started).toBeLessThan(1_000);
    // Settled with the request under way, not merely queued.
    expect(relay.status()[0]).toMatchObject({ queued: 0, inFlight: 1 });
    await until(() => peer.requests.length === 1, 3_000, 'the request at the peer');
    expect(relay.status()[0]).toMatchObject({ inFlight: 1, sent: 0 });
    answer!();
    await until(() => relay.status()[0].sent === 1);
  });

  it('relay - send() waits at most handoffWaitMs when the peer has every request in flight, and never for a down peer', async () => {
    const peer = await peerServer(() => undefined); // never answers
    const relay = relayTo([peer.port], { maxInFlight: 1, handoffWaitMs: 100 });
    await relay.send(envelope(), [OWN]); // written: the one slot is now busy
    const started = Date.now();
    await relay.send(envelope(), [OWN]); // queued behind it
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(90);
    expect(waited).toBeLessThan(1_000);
    expect(relay.status()[0]).toMatchObject({ queued: 1, inFlight: 1 });

    const dead = relayTo([await deadPort()], { handoffWaitMs: 5_000 });
    const t0 = Date.now();
    await dead.send(envelope(), [OWN]); // refused: settles with the failure
    await until(() => dead.status()[0].state === 'down', 3_000, 'down');
    await dead.send(envelope(), [OWN]); // down: not waited for
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('relay - Content-Length counts bytes, so non-ASCII text arrives whole', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port]);
    const text = 'Grüße — 日本語のテキスト 🎉 ñ';
    const env = envelope({ title: text });
    relay.send(env, [OWN]);
    await until(() => peer.requests.length === 1);
    const [req] = peer.requests;
    expect(Number(req.headers['content-length'])).toBe(Buffer.byteLength(env.frame));
    expect(Number(req.headers['content-length'])).toBeGreaterThan(env.frame.length);
    expect(JSON.parse(req.body.toString('utf8')).title).toBe(text);
  });

  it('relay - learns the peer fingerprint from its receipt and skips messages it already touched', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port]);
    relay.send(envelope(), [OWN]);
    await until(() => relay.status()[0].fingerprint === 'peerA', 3_000, 'fingerprint');
    relay.send(envelope({}, 'default', ['peerA', OWN]), ['peerA', OWN]);
    const third = envelope();
    relay.send(third, [OWN]);
    await until(() => peer.requests.length >= 2);
    await sleep(100);
    expect(peer.requests.map((r) => r.headers[MESSAGE_ID_HEADER])).toEqual([peer.requests[0].headers[MESSAGE_ID_HEADER], third.id]);
  });

  it('relay - a peer whose receipt carries our own fingerprint is self and never sent to again', async () => {
    const me = await peerServer(receipt(OWN));
    const other = await peerServer(receipt('peerB'));
    const relay = relayTo([me.port, other.port]);
    relay.send(envelope(), [OWN]);
    await until(() => relay.status()[0].state === 'self', 3_000, 'self');
    for (let i = 0; i < 5; i++) relay.send(envelope(), [OWN]);
    await until(() => other.requests.length === 6);
    await sleep(100);
    expect(me.requests).toHaveLength(1);
    expect(relay.status()[0]).toMatchObject({ state: 'self', fingerprint: OWN, queued: 0 });
  });

  it('relay - a dead peer never throws or delays send(), shows down, and is retried with backoff', async () => {
    const port = await deadPort();
    const relay = relayTo([port], { retryMinMs: 50, retryMaxMs: 200 });
    const started = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) relay.send(envelope(), [OWN]);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(50);
    await until(() => relay.status()[0].state === 'down', 3_000, 'down');
    await sleep(1_000);
    const s = relay.status()[0];
    // Probes at 50, 100, 200, 200, ... ms: a handful per second, not one per message.
    expect(s.failed).toBeGreaterThanOrEqual(3);
    expect(s.failed).toBeLessThanOrEqual(12);
    expect(s.lastError).toMatch(/ECONNREFUSED/);
    expect(s.queued).toBe(50);
    expect(s.sent).toBe(0);

    // The peer comes back on the same port: the queue drains in order.
    const peer = await peerServer(receipt('peerA'), port);
    await until(() => peer.requests.length === 50, 3_000, 'queue drained');
    await until(() => relay.status()[0].state === 'up' && relay.status()[0].sent === 50);
    expect(relay.status()[0].queued).toBe(0);
  });

  it('relay - a slow peer times out without holding up a fast one', async () => {
    const slow = await peerServer(() => undefined); // reads the request, never answers
    const fast = await peerServer(receipt('peerFast'));
    const relay = relayTo([slow.port, fast.port], { timeoutMs: 200, retryMinMs: 100, retryMaxMs: 400, maxInFlight: 2 });
    const started = Date.now();
    for (let i = 0; i < 20; i++) relay.send(envelope(), [OWN]);
    await until(() => fast.requests.length === 20, 2_000, 'fast peer');
    expect(Date.now() - started).toBeLessThan(1_000);
    await until(() => relay.status()[0].state === 'down', 2_000, 'slow peer down');
    const [slowStatus, fastStatus] = relay.status();
    expect(slowStatus.lastError).toBe('no answer within 200 ms');
    expect(slowStatus.failed).toBeGreaterThanOrEqual(1);
    expect(slowStatus.queued + slowStatus.inFlight).toBeGreaterThan(0);
    expect(slow.maxOpen).toBeLessThanOrEqual(2);
    expect(fastStatus).toMatchObject({ state: 'up', sent: 20, failed: 0 });
  });

  it('relay - a full queue drops the oldest messages and counts them', async () => {
    const port = await deadPort();
    const relay = relayTo([port], { queueSize: 5, retryMinMs: 10_000, retryMaxMs: 10_000 });
    const envs = Array.from({ length: 20 }, () => envelope());
    for (const e of envs) relay.send(e, [OWN]);
    expect(relay.status()[0]).toMatchObject({ queued: 5, dropped: 15 });
    await until(() => relay.status()[0].state === 'down', 3_000, 'down');
    expect(relay.status()[0]).toMatchObject({ queued: 5, dropped: 15 });

    // close() finds the peer down and gives its queue up at once rather than waiting for a retry.
    const started = Date.now();
    await relay.close();
    expect(Date.now() - started).toBeLessThan(500);
    expect(relay.status()[0]).toMatchObject({ queued: 0, sent: 0 });
    expect(relay.status()[0].dropped).toBe(20);
  });

  it('relay - after a peer comes back, the newest queued messages are the ones sent', async () => {
    const port = await deadPort();
    const relay = relayTo([port], { queueSize: 5, retryMinMs: 100, retryMaxMs: 100 });
    const envs = Array.from({ length: 20 }, () => envelope());
    for (const e of envs) relay.send(e, [OWN]);
    await until(() => relay.status()[0].state === 'down', 3_000, 'down');
    const peer = await peerServer(receipt('peerA'), port);
    await until(() => relay.status()[0].sent === 5, 3_000, 'five sent');
    const ids = peer.requests.map((r) => r.headers[MESSAGE_ID_HEADER]).sort();
    expect(ids).toEqual(envs.slice(15).map((e) => e.id).sort());
    expect(relay.status()[0]).toMatchObject({ state: 'up', queued: 0, dropped: 15, sent: 5 });
  });

  it('relay - keeps a few pooled keep-alive connections per peer', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port], { maxInFlight: 3 });
    for (let i = 0; i < 30; i++) relay.send(envelope(), [OWN]);
    await until(() => peer.requests.length === 30);
    for (let i = 0; i < 30; i++) {
      relay.send(envelope(), [OWN]);
      await sleep(1);
    }
    await until(() => peer.requests.length === 60);
    expect(peer.connections).toBeLessThanOrEqual(3);
    expect(peer.maxOpen).toBeLessThanOrEqual(3);
  });

  it('relay - a refused message (4xx) is counted and not retried; the peer stays up', async () => {
    const peer = await peerServer((_req, res) => {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end('{"error":"not_an_object"}');
    });
    const relay = relayTo([peer.port], { retryMinMs: 20 });
    relay.send(envelope(), [OWN]);
    await until(() => relay.status()[0].failed === 1);
    await sleep(200);
    expect(peer.requests).toHaveLength(1);
    expect(relay.status()[0]).toMatchObject({ state: 'up', sent: 0, failed: 1, dropped: 1, lastError: 'HTTP 400' });
  });

  it('relay - close() sends what is queued to live peers, then refuses new messages', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port]);
    for (let i = 0; i < 25; i++) relay.send(envelope(), [OWN]);
    await relay.close();
    expect(peer.requests).toHaveLength(25);
    relay.send(envelope(), [OWN]);
    await sleep(50);
    expect(peer.requests).toHaveLength(25);
    await relay.close(); // idempotent
  });

  it('relay - close() is bounded when a peer never answers', async () => {
    const slow = await peerServer(() => undefined);
    const relay = relayTo([slow.port], { timeoutMs: 5_000, closeTimeoutMs: 300 });
    for (let i = 0; i < 10; i++) relay.send(envelope(), [OWN]);
    await until(() => slow.requests.length > 0);
    const started = Date.now();
    await relay.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    await until(() => relay.status()[0].inFlight === 0, 2_000, 'in-flight requests ended');
    expect(relay.status()[0]).toMatchObject({ sent: 0, queued: 0 });
    expect(relay.status()[0].dropped).toBe(10);
  });

  it('relay - an id that is not a plain header token is left out of the headers, and the message still goes', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port]);
    const odd = { ...envelope(), id: 'id with spaces ü\n' };
    const plain = envelope();
    relay.send(odd, [OWN]);
    relay.send(plain, [OWN]);
    await until(() => peer.requests.length === 2 && relay.status()[0].sent === 2);
    const byBody = (e: Envelope) => peer.requests.find((r) => r.body.toString() === e.frame)!;
    expect(byBody(odd).headers[MESSAGE_ID_HEADER]).toBeUndefined();
    expect(byBody(plain).headers[MESSAGE_ID_HEADER]).toBe(plain.id);
    expect(relay.status()[0]).toMatchObject({ failed: 0, dropped: 0 });
  });

  it('relay - a message that cannot be turned into a request is dropped without marking the peer down', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port]);
    relay.send(envelope({}, 'bad\uD800instance'), [OWN]); // a lone surrogate: not encodable in a URL
    const good = envelope();
    relay.send(good, [OWN]);
    await until(() => relay.status()[0].sent === 1 && relay.status()[0].dropped === 1);
    expect(peer.requests.map((r) => r.headers[MESSAGE_ID_HEADER])).toEqual([good.id]);
    expect(relay.status()[0]).toMatchObject({ state: 'up', failed: 1, lastError: 'URI malformed' });
  });

  it('relay - with forward: false, messages that came from another node are not relayed again', async () => {
    const peer = await peerServer(receipt('peerA'));
    const relay = relayTo([peer.port], { forward: false });
    const fromPeer = envelope({}, 'default', ['otherNode', OWN]);
    const own = envelope();
    relay.send(fromPeer, ['otherNode', OWN]);
    relay.send(own, [OWN]);
    await until(() => relay.status()[0].sent === 1);
    await sleep(100);
    expect(peer.requests.map((r) => r.headers[MESSAGE_ID_HEADER])).toEqual([own.id]);
  });

  it('relay - rejects contradictory options with an error that names them', () => {
    expect(() => relayTo([1], { retryMinMs: 500, retryMaxMs: 100 })).toThrow(RelayOptionsError);
    expect(() => relayTo([1], { retryMinMs: 500, retryMaxMs: 100 })).toThrow(/retryMinMs.*retryMaxMs/);
    expect(() => relayTo([1], { queueSize: 0 })).toThrow(/queueSize/);
  });
});
