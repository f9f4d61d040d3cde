/**
 * `tidings notify` and `tidings status` with admin credentials, as processes, against a
 * small HTTP server on 127.0.0.1 that records every request and answers as a Tidings admin
 * port does: `--token` and TIDINGS_TOKEN travel as `Authorization: Bearer`, a path in
 * `--admin` is kept as a prefix (Phorge's `/TOKEN` form), and neither ever reaches the
 * output. The same against a real gateway with auth.adminTokens: cli-auth-gateway.spec.ts.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GATEWAY_MAIN } from '@tidings/testing';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tidings(args: string[], env: Record<string, string> = {}): Promise<Run> {
  // TIDINGS_TOKEN from the runner's own environment must not leak into the cases without it.
  const { TIDINGS_TOKEN: _ignored, ...base } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { timeout: 20_000, env: { ...base, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const TOKEN = 'cli-admin-token-0123456789abcdef';
const PATH_TOKEN = 'path-admin-token-0123456789abcd';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

let server: http.Server;
let origin: string;
const seen: Seen[] = [];
/** When set, every request is answered with this status and body. */
let refuseWith: { status: number; body: string; type: string } | undefined;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
      if (refuseWith) {
        res.writeHead(refuseWith.status, { 'Content-Type': refuseWith.type });
        return res.end(refuseWith.body);
      }
      const path = req.url!.split('?', 1)[0].replace(/^\/[^/]*-admin-token-[^/]*/, '');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (req.method === 'POST') return res.end('{"fingerprint":"recordingServer0"}');
      if (path === '/readyz') return res.end('{"status":"ready"}');
      res.end(JSON.stringify({ instance: 'acme', uptime: 1, 'clients.active': 0, 'clients.total': 0, 'messages.in': 0, 'messages.out': 0, version: 7, 'history.size': 0, 'history.age': null, 'tidings.version': 'x', fingerprint: 'recordingServer0' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  seen.length = 0;
  refuseWith = undefined;
});

function expectNoSecrets(run: Run): void {
  for (const secret of [TOKEN, PATH_TOKEN]) {
    expect(run.stdout).not.toContain(secret);
    expect(run.stderr).not.toContain(secret);
  }
}

describe('tidings CLI credentials', () => {
  it('cli auth - without a token nothing changes: no Authorization header, POST /?instance=, GET /status/ and /readyz', async () => {
    const notify = await tidings(['notify', '--admin', origin, '--subscribers', 'PHID-X']);
    const status = await tidings(['status', '--admin', origin, '--instance', 'acme']);
    expect([notify.code, status.code]).toEqual([0, 0]);
    expect(seen).toEqual([
      { method: 'POST', url: '/?instance=default', authorization: undefined },
      { method: 'GET', url: '/status/?instance=acme', authorization: undefined },
      { method: 'GET', url: '/readyz', authorization: undefined },
    ]);
  });

  it('cli auth - --token is sent as Authorization: Bearer by notify and by both requests of status, and never printed', async () => {
    const notify = await tidings(['notify', '--admin', origin, '--subscribers', 'PHID-X', '--token', TOKEN]);
    const status = await tidings(['status', '--admin', origin, '--token', TOKEN]);
    expect([notify.code, status.code]).toEqual([0, 0]);
    expect(notify.stdout).toContain('fingerprint recordingServer0');
    expect(status.stdout).toMatch(/^ready\s+yes$/m);
    expect(seen.map((s) => [s.method, s.url.split('?', 1)[0], s.authorization])).toEqual([
      ['POST', '/', `Bearer ${TOKEN}`],
      ['GET', '/status/', `Bearer ${TOKEN}`],
      ['GET', '/readyz', `Bearer ${TOKEN}`],
    ]);
    expectNoSecrets(notify);
    expectNoSecrets(status);
  });

  it('cli auth - TIDINGS_TOKEN works as --token does, and --token wins over it', async () => {
    const fromEnv = await tidings(['notify', '--admin', origin, '--subscribers', 'PHID-X'], { TIDINGS_TOKEN: TOKEN });
    const both = await tidings(['status', '--admin', origin, '--token', `${TOKEN}-flag`], { TIDINGS_TOKEN: TOKEN });
    expect([fromEnv.code, both.code]).toEqual([0, 0]);
    expect(seen.map((s) => s.authorization)).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}-flag`, `Bearer ${TOKEN}-flag`]);
  });

  it('cli auth - a path in --admin is kept as a prefix, as Phorge uses a path token: /TOKEN/?instance=, /TOKEN/status/, /TOKEN/readyz', async () => {
    for (const admin of [`${origin}/${PATH_TOKEN}`, `${origin}/${PATH_TOKEN}/`]) {
      seen.length = 0;
      const notify = await tidings(['notify', '--admin', admin, '--subscribers', 'PHID-X', '--instance', 'acme']);
      const status = await tidings(['status', '--admin', admin, '--instance', 'acme']);
      expect([notify.code, status.code]).toEqual([0, 0]);
      expect(seen.map((s) => [s.method, s.url, s.authorization])).toEqual([
        ['POST', `/${PATH_TOKEN}/?instance=acme`, undefined],
        ['GET', `/${PATH_TOKEN}/status/?instance=acme`, undefined],
        ['GET', `/${PATH_TOKEN}/readyz`, undefined],
      ]);
      expectNoSecrets(notify);
      expectNoSecrets(status);
    }
  });

  it('cli auth - a 401 says what to do, and an answer that repeats the path or token is printed with them redacted', async () => {
    refuseWith = { status: 401, type: 'application/json', body: '{"error":"unauthorized","message":"this admin server needs a token"}' };
    const bare = await tidings(['notify', '--admin', origin, '--subscribers', 'PHID-X']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toBe(
      `tidings: ${origin} refused the message: 401 unauthorized: this admin server needs a token (give a token with --token or TIDINGS_TOKEN, or put it first in the --admin path)\n`,
    );
    const withToken = await tidings(['status', '--admin', origin, '--token', TOKEN]);
    expect(withToken.code).toBe(1);
    expect(withToken.stderr).toBe(`tidings: ${origin}/status/ answered 401 unauthorized: this admin server needs a token (the token given was refused)\n`);

    // An admin server that does not know path tokens, answering as express does by default.
    refuseWith = { status: 404, type: 'text/html', body: `Cannot GET /${PATH_TOKEN}/status/ (Bearer ${TOKEN})` };
    const echoed = await tidings(['status', '--admin', `${origin}/${PATH_TOKEN}`, '--token', TOKEN]);
    expect(echoed.code).toBe(1);
    expect(echoed.stderr).toBe(`tidings: ${origin}/REDACTED/status/ answered 404 Cannot GET /REDACTED/status/ (Bearer REDACTED)\n`);
    // Positive control: the server did send the secrets back, so the redaction had work to do.
    expect(refuseWith.body).toContain(TOKEN);
    expectNoSecrets(echoed);
  });

  it('cli auth - a token that cannot travel in a header is refused with exit 2, without repeating it', async () => {
    for (const bad of ['two words', 'tab\there', 'naïve-token-value']) {
      const run = await tidings(['notify', '--admin', origin, '--subscribers', 'PHID-X', '--token', bad]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/--token \(or TIDINGS_TOKEN\): must be one run of visible ASCII characters/);
      expect(run.stderr).not.toContain(bad);
    }
    expect(seen).toEqual([]);
  });
});
