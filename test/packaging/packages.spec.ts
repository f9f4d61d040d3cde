/**
 * The packages as a user gets them: `tools/pack.mjs` (what `npm run pack` runs) writes the
 * tarballs, which are installed into an empty folder outside the workspace as a user would
 * (`npm install -g` of the gateway into a prefix of ours, `npm install` of the client into an
 * app), dependencies resolved from npm's cache (--prefer-offline); then the installed
 * `tidings` serves and small scripts with the installed client connect, subscribe, publish
 * with fetch and receive, through both entries (ESM and CommonJS) and both transports.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = resolve(__dirname, '../..');

interface PackReport {
  name: string;
  version: string;
  file: string;
  size: number;
  dependencies: Record<string, string>;
}

let work: string;
let gatewayTarball: PackReport;
let clientTarball: PackReport;
/** `npm install -g --prefix` target: bin/tidings, lib/node_modules/tidings. */
let prefix: string;
/** The user's application folder, with @tidings/client installed. */
let app: string;
const timings: Record<string, number> = {};
const children: ChildProcess[] = [];

/** The environment of a user's shell: none of the npm_* variables `npm test` puts around Jest. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await work();
  } finally {
    timings[name] = Date.now() - started;
  }
}

const npmInstall = (cwd: string, args: string[]) =>
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...args], { cwd, env: userEnv(), timeout: 120_000 });

beforeAll(async () => {
  // realpath: os.tmpdir() may be a symlink, and the checks below compare paths.
  work = realpathSync(mkdtempSync(join(tmpdir(), 'tidings-packages-')));
  const { stdout } = await timed('pack', () => run(process.execPath, [join(root, 'tools/pack.mjs'), '--out', join(work, 'tarballs')], { cwd: root, env: userEnv() }));
  const reports = stdout.trim().split('\n').map((line) => JSON.parse(line) as PackReport);
  gatewayTarball = reports.find((r) => r.name === 'tidings')!;
  clientTarball = reports.find((r) => r.name === '@tidings/client')!;

  prefix = join(work, 'global');
  await timed('install gateway (-g)', () => npmInstall(work, ['-g', '--prefix', prefix, gatewayTarball.file]));
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tidings-user-app', private: true, type: 'module' }));
  await timed('install client', () => npmInstall(app, [clientTarball.file]));
  for (const file of ['receive.mjs', 'receive.cjs']) copyFileSync(join(__dirname, 'app', file), join(app, file));
}, 150_000);

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  console.log(`packaging: ${Object.entries(timings).map(([k, ms]) => `${k} ${ms} ms`).join(', ')}`);
  if (work) rmSync(work, { recursive: true, force: true });
});

const installedGateway = () => join(prefix, 'lib/node_modules/tidings');
const installedClient = () => join(app, 'node_modules/@tidings/client');
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/** Starts the installed `tidings` from the user's folder; resolves with its ports once it logged `gateway started`. */
async function startInstalledGateway(config: Record<string, unknown>): Promise<{ child: ChildProcess; clientUrl: string; adminUrl: string; version: string }> {
  const file = join(work, `aphlict-${children.length}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(join(prefix, 'bin/tidings'), [`--config=${file}`], {
    cwd: work,
    env: { ...userEnv(), TIDINGS_SHUTDOWN_DRAIN_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d.toString()));
  return new Promise((res, rej) => {
    const ports: Record<string, number> = {};
    const timer = setTimeout(() => rej(new Error(`the installed tidings did not start within 15 s: ${stderr}`)), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`the installed tidings exited with ${code}: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      if (/server listening$/.test(String(rec.msg))) ports[String(rec.type)] = rec.port as number;
      if (rec.msg === 'gateway started') {
        clearTimeout(timer);
        res({ child, clientUrl: `ws://127.0.0.1:${ports.client}`, adminUrl: `http://127.0.0.1:${ports.admin}`, version: String(rec.version) });
      }
    });
  });
}

const SERVERS = [
  { type: 'client', port: 0, listen: '127.0.0.1' },
  { type: 'admin', port: 0, listen: '127.0.0.1' },
];

describe('the tarballs', () => {
  it('are installed outside the workspace, where nothing of the workspace can be resolved', () => {
    expect(work.startsWith(root)).toBe(false);
    // Node looks for packages in every parent's node_modules: none may exist above the work folder.
    for (let dir = dirname(work); ; dir = dirname(dir)) {
      expect(existsSync(join(dir, 'node_modules'))).toBe(false);
      if (dirname(dir) === dir) break;
    }
    expect(existsSync(join(prefix, 'bin/tidings'))).toBe(true);
    expect(existsSync(join(installedClient(), 'package.json'))).toBe(true);
  });

  it('tidings: one bundled file and a bin, the workspace libs inside, every npm package a real dependency', () => {
    const manifest = readJson(join(installedGateway(), 'package.json'));
    expect(manifest).toMatchObject({ name: 'tidings', bin: { tidings: 'dist/tidings.js' } });
    const deps = manifest.dependencies as Record<string, string>;
    expect(Object.keys(deps).filter((d) => d.startsWith('@tidings/'))).toEqual([]);
    for (const name of ['ws', 'socket.io', 'engine.io', 'ioredis', 'jose', 'pino', 'prom-client', 'express', 'zod', 'commander', '@socket.io/redis-adapter']) {
      expect(deps[name]).toBeDefined();
      // A real dependency, installed beside the package, not bundled into it.
      expect(existsSync(join(installedGateway(), 'node_modules', name, 'package.json'))).toBe(true);
    }
    // The gateway reaches into ws's and engine.io's internals: their exact pins carry over.
    const gatewayDeps = readJson(join(root, 'services/gateway/package.json')).dependencies as Record<string, string>;
    for (const pinned of ['ws', 'engine.io', 'socket.io']) expect(deps[pinned]).toBe(gatewayDeps[pinned]);
    const bundle = readFileSync(join(installedGateway(), 'dist/tidings.js'), 'utf8');
    expect(bundle.startsWith('#!/usr/bin/env node')).toBe(true);
    expect(bundle).not.toMatch(/require\(["']@tidings\//);
    // Positive control: the bundle does require its dependencies by name.
    expect(bundle).toMatch(/require\(["']ioredis["']\)/);
  });

  it('@tidings/client: no dependency on the workspace, declarations that stand alone', () => {
    const manifest = readJson(join(installedClient(), 'package.json'));
    expect(Object.keys(manifest.dependencies as object).sort()).toEqual(['socket.io-client', 'ws']);
    for (const file of ['dist/index.js', 'dist/esm/index.js', 'dist/index.d.ts', 'dist/esm/index.d.ts', 'README.md']) {
      expect(existsSync(join(installedClient(), file))).toBe(true);
    }
    for (const file of ['dist/index.d.ts', 'dist/esm/index.d.ts']) {
      expect(readFileSync(join(installedClient(), file), 'utf8')).not.toContain('@tidings/');
    }
    expect(existsSync(join(app, 'node_modules/@tidings/protocol'))).toBe(false);
  });
});

describe('the installed tidings command', () => {
  it('checks a config file with --test=true: 0 when good, 1 naming the bad key', async () => {
    const good = join(work, 'good.json');
    const bad = join(work, 'bad.json');
    writeFileSync(good, JSON.stringify({ servers: SERVERS }));
    writeFileSync(bad, JSON.stringify({ servers: SERVERS, histroy: {} }));
    const bin = join(prefix, 'bin/tidings');
    await expect(run(bin, [`--config=${good}`, '--test=true'], { cwd: work, env: userEnv() })).resolves.toBeDefined();
    await expect(run(bin, [`--config=${bad}`, '--test=true'], { cwd: work, env: userEnv() })).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('histroy') });
  });

  it('serves, and scripts with the installed client connect, subscribe, publish with fetch and receive', async () => {
    const gateway = await startInstalledGateway({ servers: SERVERS });
    expect(gateway.version).toBe(gatewayTarball.version);
    const cases = [
      ['receive.mjs', 'aphlict'],
      ['receive.mjs', 'socket.io'],
      ['receive.cjs', 'aphlict'],
      ['receive.cjs', 'socket.io'],
    ] as const;
    for (const [script, transport] of cases) {
      const { stdout } = await timed(`${script} ${transport}`, () =>
        run(process.execPath, [script, gateway.clientUrl, gateway.adminUrl, transport], { cwd: app, env: userEnv(), timeout: 20_000 }),
      );
      const result = JSON.parse(stdout) as { publish: number; message: Record<string, unknown>; position?: unknown; url: string };
      const key = script.endsWith('.cjs') ? `packaged-cjs-${transport}` : `packaged-${transport}`;
      expect({ script, transport, publish: result.publish, key: result.message.key }).toEqual({ script, transport, publish: 200, key });
      expect(result.position).toEqual({ offset: expect.any(Number), epoch: expect.any(String) });
      expect(result.url.startsWith(gateway.clientUrl)).toBe(true);
    }
    gateway.child.kill('SIGTERM');
    expect(await new Promise((r) => gateway.child.once('exit', (code) => r(code)))).toBe(0);
  });
});

describe('the installed client in TypeScript', () => {
  const typescript = join(root, 'node_modules/typescript/bin/tsc');
  const options = {
    strict: true,
    noEmit: true,
    target: 'es2022',
    lib: ['es2022'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    // Only what the package brings: no @types, and its own declarations checked too.
    types: [],
    skipLibCheck: false,
  };

  it('type-checks a user file through both entries (import and require), strict, with no @types', async () => {
    writeFileSync(
      join(app, 'check.ts'),
      [
        "import { connect, TidingsAuthError, type ClientStatus, type Position, type SocketIoAck, type TidingsMessage } from '@tidings/client';",
        "const client = connect(['wss://a.example', 'wss://b.example'], { transport: 'socket.io', instance: 'acme', getToken: async () => 'token' });",
        'client.on(\'message\', (message: TidingsMessage, position?: Position) => { const phids: string[] = message.subscribers; void phids; void position?.offset.toFixed(); });',
        "client.on('status', (s: ClientStatus) => { if (s.state === 'open') { const recovered: boolean | undefined = s.recovered; void recovered; } });",
        "client.on('error', (e) => { if (e instanceof TidingsAuthError) { const code: 'unauthorized' | 'token_unavailable' = e.code; void code; } });",
        "const ack: SocketIoAck = { ok: false, error: 'forbidden', message: 'not yours', refused: ['PHID-X'] };",
        'void ack;',
        'export const closing: Promise<void> = client.close();',
      ].join('\n'),
    );
    writeFileSync(
      join(app, 'check-require.cts'),
      "import tidings = require('@tidings/client');\nexport const code: 4001 = tidings.TOKEN_EXPIRED_CLOSE_CODE;\nexport const position: tidings.Position | null = tidings.readPosition({ offset: 1, epoch: 'e' });\n",
    );
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: options, files: ['check.ts', 'check-require.cts'] }));
    await expect(run(process.execPath, [typescript, '-p', 'tsconfig.json'], { cwd: app })).resolves.toBeDefined();
  });

  it('rejects what the types forbid (the control: the declarations are not any)', async () => {
    writeFileSync(
      join(app, 'wrong.ts'),
      "import { connect, type Position } from '@tidings/client';\nexport const p: Position = { offset: 'one', epoch: 'e' };\nexport const c = connect('wss://x.example', { transport: 'carrier-pigeon' });\n",
    );
    writeFileSync(join(app, 'tsconfig.wrong.json'), JSON.stringify({ compilerOptions: options, files: ['wrong.ts'] }));
    const failed = await run(process.execPath, [typescript, '-p', 'tsconfig.wrong.json'], { cwd: app }).catch((err: { stdout: string }) => err);
    const out = (failed as { stdout: string }).stdout;
    expect(out).toMatch(/wrong\.ts\(2,\d+\): error TS2322/);
    expect(out).toMatch(/wrong\.ts\(3,\d+\): error TS2322/);
  });
});
