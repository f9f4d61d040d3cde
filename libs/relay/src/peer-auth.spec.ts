/**
 * The relay's credentials: a `cluster` entry's `path` prefix (Phorge's `/TOKEN` form) and
 * this node's bearer token, against real HTTP servers on 127.0.0.1. One of them gates its
 * requests with the admin port's own gate (@tidings/auth createAdminAuth), so the relay and
 * the admin auth are shown to agree on where a token goes; another routes as Aphlict does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
// The admin port's gate, to show both sides agree; the relay itself does not depend on auth.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { createAdminAuth } from '@tidings/auth';
import type { Envelope, Logger } from '@tidings/protocol';
import { PeerRelay, RelayOptionsError, type PeerRelayOptions } from './peer-relay';
import { peerName, relayTarget, type PeerAddress } from './peer';

const OWN = 'ownFingerprint00';
const PEER_TOKEN = 'peer-admin-token-0123456789';
const OUR_TOKEN = 'our-admin-token-abcdefghij';

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Server {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

type Handler = (req: Seen, res: http.ServerResponse) => void;

const servers: Server[] = [];
const relays: PeerRelay[] = [];

async function server(handler: Handler): Promise<Server> {
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const seen = { url: req.url!, headers: req.headers, body };
      state.seen.push(seen);
      handler(seen, res);
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const state: Server = {
    port: (srv.address() as AddressInfo).port,
    seen: [],
    close: () =>
      new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections();
      }),
  };
  servers.push(state);
  return state;
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** A Tidings admin port as far as auth and routing go: the real gate, then `POST /` only. */
function tidingsPeer(fingerprint: string, tokens: string[]): Handler {
  const gate = createAdminAuth({ tokens });
  return (req, res) => {
    const decision = gate.check({ method: 'POST', url: req.url, headers: { authorization: req.headers.authorization } });
    if (!decision.ok) return json(res, decision.status, { error: decision.error, message: decision.message }, decision.headers);
    const path = decision.url.split('?', 1)[0];
    if (path !== '/') return json(res, 404, { error: 'not_found' });
    json(res, 200, { fingerprint, via: decision.via });
  };
}

/** Aphlict's admin server: `POST /` publishes whatever the headers say; other paths are 404. */
function aphlictPeer(fingerprint: string): Handler {
  return (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path !== '/') {
      res.writeHead(404, 'Not Found');
      return res.end();
    }
    json(res, 200, { fingerprint });
  };
}

/** Every log call, with the bindings of the child it came through. */
function recordingLogger(lines: unknown[], bindings: Record<string, unknown> = {}): Logger {
  const log = (level: string) => (obj: object, msg?: string) => lines.push({ level, ...bindings, ...obj, msg });
  return {
    trace: log('trace'),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

let counter = 0;
function envelope(instance = 'acme'): Envelope {
  counter++;
  const message = { type: 'notification', key: String(counter), subscribers: ['PHID-USER-1'], touched: [OWN] };
  return { id: `auth-${counter}`, instance, subscribers: message.subscribers, frame: JSON.stringify(message), acceptedAt: Date.now() };
}

function relayTo(peers: PeerAddress[], options: Partial<PeerRelayOptions> = {}): PeerRelay {
  const relay = new PeerRelay({ peers, fingerprint: OWN, retryMinMs: 50, retryMaxMs: 100, ...options });
  relays.push(relay);
  return relay;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('relay credentials', () => {
  it('relay - the request target is the path prefix then /?instance=, as Phorge builds it (rtrim(path, "/") + "/")', () => {
    const at = (path?: string) => relayTarget({ host: 'h', port: 1, path }, 'acme corp');
    expect(at()).toBe('/?instance=acme%20corp');
    expect(at('/')).toBe('/?instance=acme%20corp');
    expect(at('/TOKEN')).toBe('/TOKEN/?instance=acme%20corp');
    expect(at('/TOKEN/')).toBe('/TOKEN/?instance=acme%20corp');
    expect(at('/TOKEN//')).toBe('/TOKEN/?instance=acme%20corp');
    expect(at('/proxy/TOKEN')).toBe('/proxy/TOKEN/?instance=acme%20corp');
  });

  it('relay - a peer whose cluster entry has path /TOKEN is posted to at /TOKEN/?instance=, which the admin gate lets in by its path token', async () => {
    const peer = await server(tidingsPeer('peerA', [PEER_TOKEN]));
    const relay = relayTo([{ host: '127.0.0.1', port: peer.port, path: `/${PEER_TOKEN}` }]);
    await relay.send(envelope('acme'), [OWN]);
    await until(() => relay.status()[0].sent === 1, 'the receipt');
    expect(peer.seen[0].url).toBe(`/${PEER_TOKEN}/?instance=acme`);
    expect(peer.seen[0].headers.authorization).toBeUndefined();
    expect(relay.status()[0]).toMatchObject({ state: 'up', sent: 1, failed: 0, fingerprint: 'peerA' });
  });

  it("relay - bearerToken goes to every peer as Authorization: Bearer, which the admin gate accepts; a peer without the token refuses with 401 (counted, the peer stays up)", async () => {
    const sharing = await server(tidingsPeer('peerShares', [PEER_TOKEN, OUR_TOKEN]));
    const other = await server(tidingsPeer('peerOther', [PEER_TOKEN]));
    const relay = relayTo(
      [
        { host: '127.0.0.1', port: sharing.port },
        { host: '127.0.0.1', port: other.port },
      ],
      { bearerToken: OUR_TOKEN },
    );
    await relay.send(envelope(), [OWN]);
    await until(() => relay.status()[0].sent === 1 && relay.status()[1].failed === 1, 'both answers');
    for (const peer of [sharing, other]) {
      expect(peer.seen[0].headers.authorization).toBe(`Bearer ${OUR_TOKEN}`);
      expect(peer.seen[0].url).toBe('/?instance=acme');
    }
    expect(relay.status()[0]).toMatchObject({ state: 'up', sent: 1, failed: 0, fingerprint: 'peerShares' });
    // Refused, not down: sending it again would be refused again, so it is dropped and counted.
    expect(relay.status()[1]).toMatchObject({ state: 'up', sent: 0, failed: 1, dropped: 1, lastError: 'HTTP 401' });
    await sleep(150);
    expect(other.seen).toHaveLength(1);
  });

  it("relay - with a path token and a bearer token the peer does not hold, the path token still lets the relay in", async () => {
    const peer = await server(tidingsPeer('peerA', [PEER_TOKEN]));
    const relay = relayTo([{ host: '127.0.0.1', port: peer.port, path: `/${PEER_TOKEN}` }], { bearerToken: OUR_TOKEN });
    await relay.send(envelope(), [OWN]);
    await until(() => relay.status()[0].sent === 1, 'the receipt');
    expect(peer.seen[0]).toMatchObject({ url: `/${PEER_TOKEN}/?instance=acme`, headers: { authorization: `Bearer ${OUR_TOKEN}` } });
  });

  it('relay - to an Aphlict peer: without credentials nothing changes (no Authorization header, POST /?instance=), and a bearer token is ignored by it', async () => {
    const aphlict = await server(aphlictPeer('aphlictNode00000'));
    const plain = relayTo([{ host: '127.0.0.1', port: aphlict.port }]);
    const env = envelope('default');
    await plain.send(env, [OWN]);
    await until(() => plain.status()[0].sent === 1, 'the receipt');
    expect(aphlict.seen[0].url).toBe('/?instance=default');
    expect(aphlict.seen[0].headers.authorization).toBeUndefined();
    expect(aphlict.seen[0].headers['content-type']).toBe('application/json');
    expect(aphlict.seen[0].body).toBe(env.frame);
    expect(plain.status()[0]).toMatchObject({ peer: `127.0.0.1:${aphlict.port}`, state: 'up', sent: 1, fingerprint: 'aphlictNode00000' });

    // A Tidings node with admin tokens sends its bearer token to Aphlict peers too: they ignore it.
    const withToken = relayTo([{ host: '127.0.0.1', port: aphlict.port }], { bearerToken: OUR_TOKEN });
    await withToken.send(envelope('default'), [OWN]);
    await until(() => withToken.status()[0].sent === 1, 'the receipt');
    expect(aphlict.seen[1]).toMatchObject({ url: '/?instance=default', headers: { authorization: `Bearer ${OUR_TOKEN}` } });

    // Positive control: Aphlict routes on the path, so a path prefix is a 404 there.
    const prefixed = relayTo([{ host: '127.0.0.1', port: aphlict.port, path: '/TOKEN' }]);
    await prefixed.send(envelope('default'), [OWN]);
    await until(() => prefixed.status()[0].failed === 1, 'the 404');
    expect(prefixed.status()[0].lastError).toBe('HTTP 404');
  });

  it('relay - the token and the path never appear in status, names or log lines; the peer shows as host:port/REDACTED', async () => {
    const lines: unknown[] = [];
    const refusing = await server(tidingsPeer('peerX', ['some-other-token-000000']));
    const deadServer = await server(() => undefined);
    const deadPort = deadServer.port;
    await deadServer.close();
    servers.splice(servers.indexOf(deadServer), 1);
    const relay = relayTo(
      [
        { host: '127.0.0.1', port: refusing.port, path: `/${PEER_TOKEN}` },
        { host: '127.0.0.1', port: deadPort, path: `/${PEER_TOKEN}/` },
      ],
      { bearerToken: OUR_TOKEN, logger: recordingLogger(lines) },
    );
    await relay.send(envelope(), [OWN]);
    await until(() => relay.status()[0].failed === 1 && relay.status()[1].state === 'down', 'a refusal and a dead peer');
    const [refused, down] = relay.status();
    expect(refused).toMatchObject({ peer: `127.0.0.1:${refusing.port}/REDACTED`, lastError: 'HTTP 401' });
    expect(down).toMatchObject({ peer: `127.0.0.1:${deadPort}/REDACTED`, state: 'down' });
    expect(peerName({ host: 'h', port: 1 })).toBe('h:1');
    expect(peerName({ host: 'h', port: 1, path: '/' })).toBe('h:1');
    expect(peerName({ host: 'h', port: 1, path: `/x/${PEER_TOKEN}` })).toBe('h:1/REDACTED');

    const logged = JSON.stringify(lines);
    // Positive controls: the logger saw both peers' lines, the 401 hint and the down warning.
    expect(logged).toContain(`127.0.0.1:${refusing.port}/REDACTED`);
    expect(logged).toContain(`127.0.0.1:${deadPort}/REDACTED`);
    expect(logged).toContain("refused this node's credentials (HTTP 401)");
    expect(logged).toContain('relay peer is down');
    for (const secret of [PEER_TOKEN, OUR_TOKEN]) {
      expect(logged).not.toContain(secret);
      expect(JSON.stringify(relay.status())).not.toContain(secret);
    }
  });

  it('relay - a bearer token or a path that cannot travel as is is refused at construction, without repeating it', () => {
    const secret = 'sec ret-token-with-a-space';
    expect(() => relayTo([{ host: 'h', port: 1 }], { bearerToken: secret })).toThrow(RelayOptionsError);
    try {
      relayTo([{ host: 'h', port: 1 }], { bearerToken: secret });
    } catch (err) {
      expect((err as Error).message).toMatch(/bearerToken must be/);
      expect((err as Error).message).not.toContain('sec ret');
    }
    for (const path of ['TOKEN', '/tö-ken', '/a b', '/t?x=1', '/t#f']) {
      expect(() => relayTo([{ host: 'h', port: 1, path }])).toThrow(/the path of peer h:1\/REDACTED must start with \//);
    }
    expect(() => relayTo([{ host: 'h', port: 1, path: `/${PEER_TOKEN}` }], { bearerToken: OUR_TOKEN })).not.toThrow();
  });
});
