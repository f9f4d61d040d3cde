import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Envelope } from '@tidings/protocol';
import { PeerRelay } from './peer-relay';

/** A self-signed certificate for 127.0.0.1, made with the openssl CLI for this file only. */
function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-relay-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const OWN = 'ownFingerprint00';
let server: https.Server;
let port: number;
let tlsFiles: { key: Buffer; cert: Buffer };
const bodies: string[] = [];
const relays: PeerRelay[] = [];

beforeAll(async () => {
  tlsFiles = selfSigned();
  server = https.createServer(tlsFiles, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      bodies.push(body);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"fingerprint":"tlsPeer"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await Promise.all(relays.map((r) => r.close()));
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function envelope(key: string): Envelope {
  const frame = JSON.stringify({ key, subscribers: ['PHID-1'], touched: [OWN] });
  return { id: `tls-${key}`, instance: 'default', subscribers: ['PHID-1'], frame, acceptedAt: Date.now() };
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('PeerRelay over https', () => {
  it('relay - an https peer whose certificate is not trusted is down with the TLS error', async () => {
    const relay = new PeerRelay({ peers: [{ host: '127.0.0.1', port, protocol: 'https' }], fingerprint: OWN, retryMinMs: 5_000, retryMaxMs: 5_000 });
    relays.push(relay);
    relay.send(envelope('untrusted'), [OWN]);
    await until(() => relay.status()[0].state === 'down', 'down');
    expect(relay.status()[0].lastError).toMatch(/self[- ]signed certificate/);
    expect(bodies).not.toContain(envelope('untrusted').frame);
  });

  it('relay - an https peer signed by a given CA gets the message and its receipt is learned', async () => {
    const relay = new PeerRelay({ peers: [{ host: '127.0.0.1', port, protocol: 'https' }], fingerprint: OWN, ca: tlsFiles.cert });
    relays.push(relay);
    relay.send(envelope('trusted'), [OWN]);
    await until(() => relay.status()[0].sent === 1, 'sent');
    expect(bodies).toContain(envelope('trusted').frame);
    expect(relay.status()[0]).toMatchObject({ protocol: 'https', state: 'up', fingerprint: 'tlsPeer' });
  });
});
