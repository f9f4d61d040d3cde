/**
 * The `tidings` process: config checks, signals, pidfile, log files. Real processes from
 * services/gateway/dist/main.js (run `npx nx run-many -t build` first).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { loadConfig } from '@tidings/gateway';
import { resolveConfig } from '@tidings/protocol';
import { GATEWAY_MAIN, connectSocket, getStatus, notification, post, sleep, spawnGateway, type GatewayProcess } from '@tidings/testing';

const dir = mkdtempSync(join(tmpdir(), 'tidings-process-'));
const running: GatewayProcess[] = [];

afterEach(async () => {
  for (const gw of running.splice(0)) await gw.kill();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function configFile(content: unknown): string {
  const file = join(dir, `config-${++fileCount}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { env: { ...process.env, ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/** Phorge's aphlict.default.json with our temp paths and free ports. */
function phorgeStyleConfig(extra: Record<string, unknown> = {}) {
  return {
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1', 'ssl.key': null, 'ssl.cert': null, 'ssl.chain': null },
      { type: 'admin', port: 0, listen: '127.0.0.1', 'ssl.key': null, 'ssl.cert': null, 'ssl.chain': null },
    ],
    logs: [{ path: join(dir, 'aphlict.log') }],
    pidfile: join(dir, 'pid', 'aphlict.pid'),
    ...extra,
  };
}

describe('tidings --test=true', () => {
  it("exits 0 on Phorge's default config file", async () => {
    const res = await run([`--config=${configFile(phorgeStyleConfig())}`, '--test=true']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/OK/);
  });

  it.each([
    ['a port that is not a number', { servers: [{ type: 'client', port: 'x' }, { type: 'admin', port: 0 }] }, /servers\[0\]\.port/],
    ['an unknown key', phorgeStyleConfig({ histroy: { maxMessages: 5 } }), /histroy/],
    ['a bad Tidings value', phorgeStyleConfig({ history: { maxMessages: -1 } }), /history\.maxMessages/],
    ['a bad peer', phorgeStyleConfig({ cluster: [{ host: 'h', port: 1, protocol: 'gopher' }] }), /cluster\[0\]\.protocol/],
    ['no admin server', { servers: [{ type: 'client', port: 0 }] }, /admin/],
    ['text that is not JSON', '{"servers": [', /not JSON/],
  ])('exits 1 naming the bad key on a file with %s', async (_what, content, pattern) => {
    const res = await run([`--config=${configFile(content)}`, '--test=true']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(pattern);
  });

  it('exits 1 naming the file when it cannot be read', async () => {
    const res = await run([`--config=${join(dir, 'missing.json')}`, '--test=true']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/missing\.json/);
  });

  it('exits 1 naming the env variable with a bad value', async () => {
    const res = await run([`--config=${configFile(phorgeStyleConfig())}`, '--test=true'], { TIDINGS_HISTORY_MAX_MESSAGES: 'lots' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/TIDINGS_HISTORY_MAX_MESSAGES/);
  });

  it('exits 1 on a bad config without --test too, before listening', async () => {
    const res = await run([`--config=${configFile({ servers: [] })}`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/servers/);
  });
});

describe('tidings --test=true with TLS files', () => {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const servers = (key: string, cert: string) => ({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1', 'ssl.key': join(dir, key), 'ssl.cert': join(dir, cert) },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
  });

  beforeAll(() => {
    for (const name of ['one', 'two']) {
      openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1');
    }
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
  });

  it('exits 0 when the key and certificate files are readable and match', async () => {
    expect((await run([`--config=${configFile(servers('one.key', 'one.pem'))}`, '--test=true'])).code).toBe(0);
  });

  it.each([
    ['a key file that does not exist', 'missing.key', 'one.pem', /servers\[0\]\.ssl\.key: cannot read/],
    ['a certificate file that does not exist', 'one.key', 'missing.pem', /servers\[0\]\.ssl\.cert: cannot read/],
    ['a key that does not match the certificate', 'one.key', 'two.pem', /servers\[0\]: ssl\.key and ssl\.cert/],
    ['a certificate that is not PEM', 'one.key', 'garbage.pem', /servers\[0\]: ssl\.key and ssl\.cert/],
  ])('exits 1 naming the server on %s', async (_what, key, cert, pattern) => {
    const res = await run([`--config=${configFile(servers(key, cert))}`, '--test=true']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(pattern);
  });

  it('serves wss from the checked files', async () => {
    const gw = await spawnGateway({ config: servers('one.key', 'one.pem') });
    running.push(gw);
    expect(gw.logs.find((l) => l.msg === 'client server listening')?.tls).toBe(true);
    const ws = new WebSocket(`wss://127.0.0.1:${gw.clientPort}/`, { ca: readFileSync(join(dir, 'one.pem')) });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
  });
});

describe('defaults', () => {
  it("with no config file runs Aphlict's defaults: client 0.0.0.0:22280, admin 127.0.0.1:22281", () => {
    // Checked on the resolver, not by binding the real ports on a shared machine.
    for (const config of [resolveConfig(undefined), loadConfig(undefined, {})]) {
      expect(config.servers).toEqual([
        { type: 'client', port: 22280, listen: '0.0.0.0' },
        { type: 'admin', port: 22281, listen: '127.0.0.1' },
      ]);
    }
  });
});

describe('signals', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s closes client sockets with 1001 and exits 0 within a few seconds', async (signal) => {
    const gw = await spawnGateway();
    running.push(gw);
    const sockets = await Promise.all([connectSocket(gw.clientUrl), connectSocket(`${gw.clientUrl}/~acme/`)]);
    for (const s of sockets) await s.roundTrip();
    const started = Date.now();
    const code = await gw.stop(signal);
    const closes = await Promise.all(sockets.map((s) => s.closed));
    expect(code).toBe(0);
    expect(closes.map((c) => c.code)).toEqual([1001, 1001]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(gw.logs.some((l) => l.msg === 'shutting down' && l.signal === signal)).toBe(true);
  });

  it('a SIGTERM that comes while the node is still starting still ends in a clean exit 0', async () => {
    const pidfile = join(dir, 'early.pid');
    const file = configFile({
      servers: [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port: 0, listen: '127.0.0.1' },
      ],
      pidfile,
      // Its first log line comes from building the Redis parts, before start(); port 1 is closed.
      redis: { url: 'redis://127.0.0.1:1' },
    });
    const child = spawn(process.execPath, [GATEWAY_MAIN, `--config=${file}`], {
      env: { ...process.env, TIDINGS_SHUTDOWN_DRAIN_MS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const seen: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      seen.push(line);
      if (seen.length === 1) child.kill('SIGTERM');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const result = await exited;
    clearTimeout(timer);
    expect(result).toEqual({ code: 0, signal: null });
    expect(seen.some((l) => /shutting down/.test(l))).toBe(true);
    expect(existsSync(pidfile)).toBe(false);
  });

  it('SIGTERM with a drain window spreads the closes and still exits 0', async () => {
    const gw = await spawnGateway({ env: { TIDINGS_SHUTDOWN_DRAIN_MS: '500' } });
    running.push(gw);
    const sockets = await Promise.all([1, 2, 3].map(() => connectSocket(gw.clientUrl)));
    const started = Date.now();
    const code = await gw.stop('SIGTERM');
    expect(code).toBe(0);
    expect((await Promise.all(sockets.map((s) => s.closed))).map((c) => c.code)).toEqual([1001, 1001, 1001]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('pidfile and logs', () => {
  it('writes the pidfile at start, removes it at exit, and appends JSON lines to every logs[].path', async () => {
    const pidfile = join(dir, 'run', 'nested', 'tidings.pid');
    const logA = join(dir, 'logs-a', 'aphlict.log');
    const logB = join(dir, 'aphlict-b.log');
    writeFileSync(logB, 'an older line kept by append\n');
    const gw = await spawnGateway({ config: { pidfile, logs: [{ path: logA }, { path: logB }] } });
    running.push(gw);
    expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(gw.pid));
    expect((await post(gw.adminUrl, notification(['PHID-LOG']))).status).toBe(200);
    expect((await post(gw.adminUrl, '[', { raw: true })).status).toBe(400);
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect(existsSync(pidfile)).toBe(false);
    for (const file of [logA, logB]) {
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      const records = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records.length).toBeGreaterThan(2);
      const messages = records.map((r) => r.msg);
      expect(messages).toContain('gateway started');
      expect(messages).toContain('gateway closed');
      expect(records.some((r) => typeof r.msg === 'string' && /publish refused/.test(r.msg))).toBe(true);
      for (const r of records) {
        expect(typeof r.level).toBe('number');
        expect(typeof r.time).toBe('number');
        expect(r.pid).toBe(gw.pid);
      }
    }
    expect(readFileSync(logB, 'utf8').startsWith('an older line kept by append\n')).toBe(true);
  });

  it("leaves a pidfile holding its parent's PID alone (Phorge's bin/aphlict overseer owns it)", async () => {
    const pidfile = join(dir, 'overseer.pid');
    // The spawned gateway's parent is this test process, as bin/aphlict's overseer is Aphlict's.
    writeFileSync(pidfile, String(process.pid));
    const gw = await spawnGateway({ config: { pidfile } });
    running.push(gw);
    expect(readFileSync(pidfile, 'utf8')).toBe(String(process.pid));
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect(readFileSync(pidfile, 'utf8')).toBe(String(process.pid));
  });

  it('replaces a stale pidfile of another process', async () => {
    const pidfile = join(dir, 'stale.pid');
    writeFileSync(pidfile, '999999999\n');
    const gw = await spawnGateway({ config: { pidfile } });
    running.push(gw);
    expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(gw.pid));
    expect(await gw.stop('SIGINT')).toBe(0);
    expect(existsSync(pidfile)).toBe(false);
  });

  it('reopens log files on SIGHUP (logrotate moved them away)', async () => {
    const log = join(dir, 'rotate.log');
    const gw = await spawnGateway({ config: { logs: [{ path: log }] } });
    running.push(gw);
    await sleep(200);
    renameSync(log, `${log}.1`);
    process.kill(gw.pid, 'SIGHUP');
    const deadline = Date.now() + 5_000;
    while (!existsSync(log) && Date.now() < deadline) await sleep(50);
    await post(gw.adminUrl, '[', { raw: true });
    expect(await gw.stop('SIGTERM')).toBe(0);
    const fresh = readFileSync(log, 'utf8');
    expect(fresh).toMatch(/log files reopened/);
    expect(fresh).toMatch(/gateway closed/);
    expect(readFileSync(`${log}.1`, 'utf8')).toMatch(/gateway started/);
  });
});

describe('--debug=true', () => {
  it('logs readable lines to the console', async () => {
    const file = configFile({
      servers: [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port: 0, listen: '127.0.0.1' },
      ],
    });
    const child = spawn(process.execPath, [GATEWAY_MAIN, `--config=${file}`, '--debug=true'], {
      env: { ...process.env, TIDINGS_SHUTDOWN_DRAIN_MS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const lines: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start line: ${lines.join('\n')}`)), 15_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          lines.push(line);
          if (/gateway started/.test(line)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const started = lines.find((l) => /gateway started/.test(l))!;
      expect(started).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] INFO gateway started fingerprint=\S{16}/);
      expect(() => JSON.parse(started)).toThrow();
    } finally {
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  });
});

describe('a node that cannot listen', () => {
  it('exits 1 with the reason when its port is taken', async () => {
    const gw = await spawnGateway();
    running.push(gw);
    const res = await run([
      `--config=${configFile({
        servers: [
          { type: 'client', port: 0, listen: '127.0.0.1' },
          { type: 'admin', port: gw.adminPort, listen: '127.0.0.1' },
        ],
        pidfile: join(dir, 'clash.pid'),
      })}`,
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/EADDRINUSE/);
    expect(existsSync(join(dir, 'clash.pid'))).toBe(false);
    // The first node is unaffected.
    expect((await getStatus(gw.adminUrl)).version).toBe(7);
  });
});
