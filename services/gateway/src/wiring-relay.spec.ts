/**
 * createRelayCollaborator against a real HTTP server on 127.0.0.1: the node's first admin
 * token goes to peers as `Authorization: Bearer`, a `cluster[].path` is the request's
 * prefix, and the start log line names the peers without either.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolveConfig, type Logger } from '@tidings/protocol';
import type { Relay } from '@tidings/relay';
import { createRelayCollaborator } from './wiring-relay';

const MINIMAL = { servers: [{ type: 'client', port: 0, listen: '127.0.0.1' }, { type: 'admin', port: 0, listen: '127.0.0.1' }] };
const FIRST = 'first-admin-token-0123456789';
const SECOND = 'second-admin-token-012345678';
const PATH_TOKEN = 'peer-path-token-0123456789ab';

interface Seen {
  url: string;
  authorization: string | undefined;
}

let server: http.Server;
let port: number;
const seen: Seen[] = [];
const relays: Relay[] = [];

function recordingLogger(lines: unknown[], bindings: Record<string, unknown> = {}): Logger {
  const log = (level: string) => (obj: object, msg?: string) => lines.push({ level, ...bindings, ...obj, msg });
  return { trace: log('trace'), debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: (more) => recordingLogger(lines, { ...bindings, ...more }) };
}

const envelope = (n: number) => ({
  id: `wiring-${n}`,
  instance: 'acme',
  subscribers: ['PHID-X'],
  frame: JSON.stringify({ type: 'notification', subscribers: ['PHID-X'], touched: ['ownFingerprint00'] }),
  acceptedAt: Date.now(),
});

async function sentOnce(relay: Relay, n: number): Promise<Seen> {
  const before = seen.length;
  await relay.send(envelope(n), ['ownFingerprint00']);
  const deadline = Date.now() + 3_000;
  while (seen.length === before) {
    if (Date.now() > deadline) throw new Error('the peer got nothing');
    await new Promise((r) => setTimeout(r, 5));
  }
  return seen[before];
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ url: req.url!, authorization: req.headers.authorization });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"fingerprint":"peerFingerprint0"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.close()));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('createRelayCollaborator', () => {
  it('sends the first auth.adminTokens entry as a bearer token, posts under cluster[].path, and logs neither', async () => {
    const lines: unknown[] = [];
    const config = resolveConfig({
      ...MINIMAL,
      auth: { adminTokens: [FIRST, SECOND] },
      cluster: [{ host: '127.0.0.1', port, protocol: 'http', path: `/${PATH_TOKEN}` }],
    });
    const relay = createRelayCollaborator(config, 'ownFingerprint00', recordingLogger(lines))!;
    relays.push(relay);
    expect(await sentOnce(relay, 1)).toEqual({ url: `/${PATH_TOKEN}/?instance=acme`, authorization: `Bearer ${FIRST}` });
    expect(relay.status()[0].peer).toBe(`127.0.0.1:${port}/REDACTED`);
    const logged = JSON.stringify(lines);
    expect(logged).toContain(`http://127.0.0.1:${port}/REDACTED`);
    expect(logged).toContain('bearer (first auth.adminTokens entry)');
    for (const secret of [FIRST, SECOND, PATH_TOKEN]) expect(logged).not.toContain(secret);
  });

  it("with Aphlict's defaults sends no Authorization header and posts to /?instance=", async () => {
    const lines: unknown[] = [];
    const relay = createRelayCollaborator(resolveConfig({ ...MINIMAL, cluster: [{ host: '127.0.0.1', port }] }), 'ownFingerprint00', recordingLogger(lines))!;
    relays.push(relay);
    expect(await sentOnce(relay, 2)).toEqual({ url: '/?instance=acme', authorization: undefined });
    expect(relay.status()[0].peer).toBe(`127.0.0.1:${port}`);
    expect(JSON.stringify(lines)).toContain('"authorization":"none"');
  });

  it('is undefined without cluster peers', () => {
    expect(createRelayCollaborator(resolveConfig(MINIMAL), 'ownFingerprint00', recordingLogger([]))).toBeUndefined();
  });
});
