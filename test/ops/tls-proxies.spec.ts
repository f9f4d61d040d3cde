/**
 * deploy/tls: the HAProxy and nginx examples that terminate TLS in front of the client port,
 * validated by the tools themselves (`haproxy -c`, `nginx -t`) and then run, each one the
 * same way, in front of a real gateway process with a self-signed certificate made here by
 * openssl. Only addresses, ports and file paths are rewritten for the test, and every
 * rewrite must match exactly as often as expected, so a changed example fails here rather
 * than being tested half.
 *
 * The proxies reach the gateway from 127.0.0.2, which the gateway trusts (limits.trustProxy),
 * and each test client connects from an address of its own in 127.0.0.0/8: with
 * limits.maxConnectionsPerIp 1, two clients pass and a third from a used address is refused,
 * which shows the proxy's X-Forwarded-For is sent and believed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { freePort, notification, post, sleep, spawnGateway, type GatewayProcess } from '@tidings/testing';

const root = resolve(__dirname, '../..');
const HAPROXY_TLS = join(root, 'deploy/tls/haproxy-tls.cfg');
const NGINX_TLS = join(root, 'deploy/tls/nginx-tidings.conf');
const PROXY_SOURCE = '127.0.0.2';
const PHORGE_HOST = '127.0.0.5';
const SECRET = 'query-token-must-not-be-logged-7f3a';

interface Run {
  code: number;
  out: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      res({ code, out: `${stdout}${stderr}${err && code === -1 ? `\n${cmd}: ${err.message}` : ''}` });
    });
  });
}

/** Applies [pattern, replacement, times] rewrites; a pattern matching another number of times throws. */
function rewrite(text: string, edits: [RegExp, string, number][]): string {
  let out = text;
  for (const [pattern, replacement, times] of edits) {
    const flags = pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`;
    const re = new RegExp(pattern.source, flags);
    const found = out.match(re)?.length ?? 0;
    if (found !== times) throw new Error(`the example changed: ${pattern} matches ${found} times, expected ${times}`);
    out = out.replace(re, replacement);
  }
  return out;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpsGet(url: string, ca: string, localAddress?: string): Promise<Answer> {
  return new Promise((res, rej) => {
    const req = request(url, { ca, localAddress, servername: 'localhost' }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => res({ status: r.statusCode!, headers: r.headers, body }));
    });
    req.on('error', rej);
    req.end();
  });
}

function httpGet(url: string, localAddress?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((res, rej) => {
    const req = httpRequest(url, { localAddress, headers }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => res({ status: r.statusCode!, headers: r.headers, body }));
    });
    req.on('error', rej);
    req.end();
  });
}

interface Wss {
  ws: WebSocket;
  frames: Record<string, unknown>[];
  waitFor(pred: (f: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A WebSocket through the proxy from `localAddress`; resolves open, or rejects with the HTTP status of a refusal. */
function connectWss(url: string, ca: string, localAddress: string): Promise<Wss> {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, { ca, localAddress });
    const frames: Record<string, unknown>[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
    ws.once('unexpected-response', (_req, r) => rej(Object.assign(new Error(`upgrade refused: ${r.statusCode}`), { status: r.statusCode })));
    ws.once('error', rej);
    ws.once('open', () =>
      res({
        ws,
        frames,
        async waitFor(pred, what) {
          const deadline = Date.now() + 5_000;
          for (;;) {
            const hit = frames.find(pred);
            if (hit) return hit;
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(frames)}`);
            await sleep(20);
          }
        },
        close: () =>
          new Promise<void>((done) => {
            if (ws.readyState === WebSocket.CLOSED) return done();
            ws.once('close', () => done());
            ws.close();
          }),
      }),
    );
  });
}

const seconds = (value: string): number => {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(value);
  if (!m) throw new Error(`unparsed duration ${value}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
};

/** One proxy under test: how to validate and start it from the example. */
interface ProxyUnderTest {
  name: string;
  /** Writes the test copy; returns the validation command. */
  prepare(ports: Ports): { check: [string, string[]]; start: [string, string[]] };
  /** Where its access log lines end up. */
  accessLog(): string;
}
interface Ports {
  https: number;
  http: number;
  admin: number;
  gatewayClient: number;
  gatewayAdmin: number;
}

let dir: string;
let cert: string;

const haproxy: ProxyUnderTest & { stderr: string } = {
  name: 'HAProxy (deploy/tls/haproxy-tls.cfg)',
  stderr: '',
  prepare(p) {
    const cfg = rewrite(readFileSync(HAPROXY_TLS, 'utf8'), [
      [/\/etc\/haproxy\/certs\/notify\.example\.com\.pem/, join(dir, 'combined.pem'), 1],
      [/^(\s+)log \/dev\/log local0$/m, '$1log stderr format raw local0 info', 1],
      [/^(\s+)bind :80$/m, `$1bind 127.0.0.1:${p.http}`, 1],
      [/^(\s+)bind :443 ssl/m, `$1bind 127.0.0.1:${p.https} ssl`, 1],
      [/^(\s+)bind 10\.0\.0\.10:22281$/m, `$1bind 127.0.0.1:${p.admin}`, 1],
      [/10\.0\.0\.1[123]:22280/, `127.0.0.1:${p.gatewayClient}`, 9],
      [/10\.0\.0\.1[123]:22281/, `127.0.0.1:${p.gatewayAdmin}`, 3],
      [/check port 22281/, `check port ${p.gatewayAdmin}`, 6],
      [/src 10\.0\.0\.20 10\.0\.0\.21/, `src ${PHORGE_HOST}`, 1],
      [/^(\s+server .*)$/m, `$1 source ${PROXY_SOURCE}`, 12],
    ]);
    const file = join(dir, 'haproxy-tls.cfg');
    writeFileSync(file, cfg);
    return { check: ['haproxy', ['-c', '-f', file]], start: ['haproxy', ['-db', '-f', file]] };
  },
  accessLog() {
    return this.stderr;
  },
};

const nginx: ProxyUnderTest = {
  name: 'nginx (deploy/tls/nginx-tidings.conf)',
  prepare(p) {
    const site = rewrite(readFileSync(NGINX_TLS, 'utf8'), [
      [/\/etc\/ssl\/certs\/notify\.example\.com\.fullchain\.pem/, join(dir, 'cert.pem'), 1],
      [/\/etc\/ssl\/private\/notify\.example\.com\.key/, join(dir, 'key.pem'), 1],
      [/^\s+listen \[::\]:(80|443 ssl);\n/m, '', 2],
      [/listen 80;/, `listen 127.0.0.1:${p.http};`, 1],
      [/listen 443 ssl;/, `listen 127.0.0.1:${p.https} ssl;`, 1],
      [/listen 10\.0\.0\.10:22281;/, `listen 127.0.0.1:${p.admin};`, 1],
      [/10\.0\.0\.1[123]:22280/, `127.0.0.1:${p.gatewayClient}`, 6],
      [/10\.0\.0\.1[123]:22281/, `127.0.0.1:${p.gatewayAdmin}`, 3],
      [/allow 10\.0\.0\.20;/, `allow ${PHORGE_HOST};`, 1],
      [/^\s+allow 10\.0\.0\.21;\n/m, '', 1],
      [/\/var\/log\/nginx\//, `${dir}/`, 3],
      [/proxy_http_version 1\.1;/, `proxy_http_version 1.1;\n    proxy_bind ${PROXY_SOURCE};`, 2],
    ]);
    writeFileSync(join(dir, 'tidings.conf'), site);
    // The main file a distribution ships, reduced to what a test prefix needs.
    writeFileSync(
      join(dir, 'nginx.conf'),
      [
        `pid ${join(dir, 'nginx.pid')};`,
        'error_log stderr warn;',
        'worker_processes 1;',
        'events { worker_connections 1024; }',
        'http {',
        `  client_body_temp_path ${join(dir, 'body')};`,
        `  proxy_temp_path ${join(dir, 'proxy')};`,
        `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
        `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
        `  scgi_temp_path ${join(dir, 'scgi')};`,
        `  include ${join(dir, 'tidings.conf')};`,
        '}',
        '',
      ].join('\n'),
    );
    const base = ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'];
    return { check: ['nginx', ['-t', ...base]], start: ['nginx', [...base, '-g', 'daemon off;']] };
  },
  accessLog() {
    const file = join(dir, 'tidings.access.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  },
};

let gateway: GatewayProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidings-tls-'));
  chmodSync(dir, 0o755); // nginx's workers (an unprivileged user) read below it
  const made = await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ]);
  expect(made).toEqual({ code: 0, out: expect.any(String) });
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  writeFileSync(join(dir, 'combined.pem'), cert + readFileSync(join(dir, 'key.pem'), 'utf8'));
  gateway = await spawnGateway({ config: { limits: { trustProxy: [PROXY_SOURCE], maxConnectionsPerIp: 1 } } });
});
afterAll(async () => {
  await gateway?.stop('SIGINT');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('deploy/tls examples, read', () => {
  it('tls - both keep upgraded sockets open an hour, outlast the 15 s ping and a 25 s long-poll, and send X-Forwarded-For', () => {
    const h = readFileSync(HAPROXY_TLS, 'utf8');
    const timeout = (name: string) => seconds(new RegExp(`^\\s+timeout ${name} (\\S+)$`, 'm').exec(h)![1]);
    expect(timeout('tunnel')).toBeGreaterThanOrEqual(3600);
    expect(timeout('client')).toBeGreaterThan(25);
    expect(timeout('server')).toBeGreaterThan(25);
    expect(h).toMatch(/^\s+option forwardfor$/m);
    expect(h).toMatch(/use_backend tidings_socketio if \{ path_beg \/socket\.io\/ \}/);

    const n = readFileSync(NGINX_TLS, 'utf8');
    expect(seconds(/proxy_read_timeout (\S+);/.exec(n)![1])).toBeGreaterThanOrEqual(3600);
    expect(seconds(/proxy_send_timeout (\S+);/.exec(n)![1])).toBeGreaterThanOrEqual(3600);
    expect(n).toContain('proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;');
    expect(n).toContain('proxy_set_header Upgrade $http_upgrade;');
    expect(n).toMatch(/location \/socket\.io\/ \{/);
  });

  it('tls - the admin port is only on a private address, behind an allow list', () => {
    const h = readFileSync(HAPROXY_TLS, 'utf8');
    const binds = [...h.matchAll(/^\s+bind (\S+)/gm)].map((m) => m[1]);
    expect(binds).toEqual([':80', ':443', '10.0.0.10:22281']);
    expect(h).toMatch(/http-request deny deny_status 403 unless phorge_hosts/);
    const n = readFileSync(NGINX_TLS, 'utf8');
    expect([...n.matchAll(/listen (\S+?)[ ;]/g)].map((m) => m[1])).toEqual(['80', '[::]:80', '443', '[::]:443', '10.0.0.10:22281']);
    expect(n).toMatch(/deny all;/);
  });
});

describe.each([haproxy, nginx])('$name in front of a gateway', (proxy) => {
  let child: ChildProcess | undefined;
  let ports: Ports;
  let stderr = '';
  let prepared: { check: [string, string[]]; start: [string, string[]] };
  const base = () => `https://127.0.0.1:${ports.https}`;
  const opened: Wss[] = [];

  beforeAll(async () => {
    ports = {
      https: await freePort(),
      http: await freePort(),
      admin: await freePort(),
      gatewayClient: gateway.clientPort,
      gatewayAdmin: gateway.adminPort,
    };
    prepared = proxy.prepare(ports);
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('tls - the tool accepts the configuration (and refuses a broken copy)', async () => {
    const [cmd, args] = prepared.check;
    const ok = await run(cmd, args);
    expect(ok).toEqual({ code: 0, out: expect.stringMatching(/valid|successful/) });
    // Positive control: the same check on a copy with one bad directive fails.
    const file = args[args.indexOf(cmd === 'haproxy' ? '-f' : '-c') + 1];
    const target = cmd === 'haproxy' ? file : join(dir, 'tidings.conf');
    const good = readFileSync(target, 'utf8');
    try {
      writeFileSync(target, good.replace(cmd === 'haproxy' ? 'timeout tunnel 1h' : 'proxy_read_timeout 1h;', cmd === 'haproxy' ? 'timeout tunnel forever' : 'proxy_read_timeout forever;'));
      const bad = await run(cmd, args);
      expect(bad.code).not.toBe(0);
      expect(bad.out).toMatch(/timeout tunnel|proxy_read_timeout/);
    } finally {
      writeFileSync(target, good);
    }
  });

  it('tls - started, it answers the plain-HTTP 501 over TLS and redirects port 80 to https', async () => {
    const [cmd, args] = prepared.start;
    child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => {
      stderr += d.toString();
      if (proxy === haproxy) haproxy.stderr = stderr;
    });
    child.once('error', (err) => (stderr += `cannot start ${cmd}: ${err.message}`));
    const deadline = Date.now() + 15_000;
    let answer: Answer | undefined;
    while (!answer) {
      try {
        answer = await httpsGet(`${base()}/`, cert);
        if (answer.status === 503) answer = undefined; // HAProxy before its first health check
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`${proxy.name} did not answer: ${(err as Error).message}\n${stderr}`);
      }
      if (!answer) await sleep(100);
    }
    expect(answer).toMatchObject({ status: 501, body: 'HTTP/501 Use Websockets\n' });
    const redirect = await httpGet(`http://127.0.0.1:${ports.http}/~acme/?x=1`);
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toMatch(/^https:\/\/127\.0\.0\.1(:\d+)?\/~acme\/\?x=1$/);
  });

  it('tls - a raw Aphlict WebSocket over wss:// subscribes and receives a publish, and pings', async () => {
    const s = await connectWss(`wss://127.0.0.1:${ports.https}/ws/~acme/?token=${SECRET}`, cert, '127.0.0.21');
    opened.push(s);
    s.ws.send(JSON.stringify({ command: 'subscribe', data: ['PHID-USER-tls'] }));
    s.ws.send(JSON.stringify({ command: 'ping' }));
    await s.waitFor((f) => f.type === 'pong', 'pong');
    const message = notification(['PHID-USER-tls']);
    expect((await post(gateway.adminUrl, message, { instance: 'acme' })).status).toBe(200);
    expect(await s.waitFor((f) => f.key === message.key, 'the notification')).toMatchObject({ subscribers: ['PHID-USER-tls'] });
  });

  it('tls - Socket.IO on its path: long-polling, then the upgrade to a WebSocket, receives a publish', async () => {
    const agent = new Agent({ ca: cert, localAddress: '127.0.0.31', servername: 'localhost' });
    const socket = io(base(), { path: '/socket.io/', auth: { instance: 'acme' }, transports: ['polling', 'websocket'], agent: agent as never, ca: cert, reconnection: false });
    // The session opens on long-polling (separate HTTP requests through the proxy), then
    // moves to a WebSocket through the same path (often before the connect event).
    const transports = new Promise<string[]>((res) =>
      socket.io.once('open', () => {
        const first = socket.io.engine.transport.name;
        socket.io.engine.once('upgrade', (t: { name: string }) => res([first, t.name]));
      }),
    );
    try {
      await new Promise<void>((res, rej) => {
        socket.once('connect', () => res());
        socket.once('connect_error', rej);
      });
      expect(await transports).toEqual(['polling', 'websocket']);
      const ack = await socket.timeout(5_000).emitWithAck('subscribe', ['PHID-USER-sio']);
      expect(ack).toEqual({ ok: true });
      const got = new Promise<Record<string, unknown>>((res) => socket.once('message', res));
      const message = notification(['PHID-USER-sio']);
      expect((await post(gateway.adminUrl, message, { instance: 'acme' })).status).toBe(200);
      expect(await got).toMatchObject({ key: message.key });
    } finally {
      socket.close();
      agent.destroy();
    }
  });

  it("tls - X-Forwarded-For is sent and believed: the gateway's per-address limit sees each client, not the proxy", async () => {
    const [a, b] = proxy === haproxy ? ['127.0.0.3', '127.0.0.4'] : ['127.0.0.13', '127.0.0.14'];
    const url = `wss://127.0.0.1:${ports.https}/~acme/`;
    const first = await connectWss(url, cert, a);
    opened.push(first);
    // Another client through the same proxy address: allowed, so the gateway did not count the proxy.
    const second = await connectWss(url, cert, b);
    opened.push(second);
    // Positive control: a second socket from the first client's address is over the limit.
    await expect(connectWss(url, cert, a)).rejects.toMatchObject({ status: 429 });
  });

  it('tls - the admin frontend on its private address forwards only for the allowed hosts', async () => {
    const allowed = await httpGet(`http://127.0.0.1:${ports.admin}/status/`, PHORGE_HOST);
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body)).toMatchObject({ version: 7 });
    const other = await httpGet(`http://127.0.0.1:${ports.admin}/status/`, '127.0.0.6');
    expect(other.status).toBe(403);
    // And the public TLS side does not reach the admin API.
    expect(await httpsGet(`${base()}/status/`, cert)).toMatchObject({ status: 501 });
  });

  it('tls - the access log has the request paths but not the query string with the token', async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    const deadline = Date.now() + 5_000;
    while (!proxy.accessLog().includes('/ws/~acme/') && Date.now() < deadline) await sleep(50);
    const log = proxy.accessLog();
    expect(log).toContain('/ws/~acme/');
    expect(log).not.toContain(SECRET);
  });
});
