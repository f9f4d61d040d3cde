/**
 * The `logs[].path` files of a real gateway process: a path it cannot open stops
 * --test=true and the start with the path and the system's reason; a log destination that
 * fails while it runs is reported once and the gateway keeps serving.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATEWAY_MAIN, getStatus, post, sleep, spawnGateway, type GatewayProcess } from '@tidings/testing';

const dir = mkdtempSync(join(tmpdir(), 'tidings-logs-'));
const running: GatewayProcess[] = [];
const isRoot = process.getuid?.() === 0;
/** Debian's `nobody`, which cannot write a directory root made. */
const NOBODY = 65534;

afterEach(async () => {
  for (const gw of running.splice(0)) await gw.kill();
});

afterAll(() => {
  chmodSync(join(dir, 'locked'), 0o755);
  rmSync(dir, { recursive: true, force: true });
});

const servers = [
  { type: 'client', port: 0, listen: '127.0.0.1' },
  { type: 'admin', port: 0, listen: '127.0.0.1' },
];

let fileCount = 0;
function configFile(content: unknown): string {
  const file = join(dir, `config-${++fileCount}.json`);
  writeFileSync(file, JSON.stringify(content, null, 2), { mode: 0o644 });
  return file;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], user: { uid?: number; gid?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [GATEWAY_MAIN, ...args],
      { env: { ...process.env, TIDINGS_SHUTDOWN_DRAIN_MS: '0' }, timeout: 15_000, ...user },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const occurrences = (text: string, part: string) => text.split(part).length - 1;

/** A publish the admin port refuses: the gateway logs one warning line for it. */
const logSomething = (gw: GatewayProcess) => post(gw.adminUrl, '[', { raw: true });

beforeAll(() => {
  // Readable and traversable for `nobody`; `locked` is writable by root only (and by nobody
  // at all once chmod 0555 takes away the owner's write bit, for a runner that is not root).
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'locked'), { mode: 0o755 });
  if (!isRoot) chmodSync(join(dir, 'locked'), 0o555);
  mkdirSync(join(dir, 'open'), { mode: 0o777 });
  chmodSync(join(dir, 'open'), 0o777);
  mkdirSync(join(dir, 'a-directory'));
  writeFileSync(join(dir, 'a-file'), 'a regular file\n');
});

describe('a logs[].path the process cannot open', () => {
  const user = isRoot ? { uid: NOBODY, gid: NOBODY } : {};
  const cases: [string, string, string, { uid?: number; gid?: number }][] = [
    ['a directory', join(dir, 'a-directory'), 'EISDIR', {}],
    ['a path under a regular file', join(dir, 'a-file', 'aphlict.log'), 'ENOTDIR', {}],
    [
      isRoot ? 'a file in a directory its user may not write (run as uid 65534)' : 'a file in a directory made read-only',
      join(dir, 'locked', 'aphlict.log'),
      'EACCES',
      user,
    ],
  ];

  it.each(cases)('%s: --test=true exits 1 naming the path and the reason', async (_what, path, reason, asUser) => {
    const res = await run([`--config=${configFile({ servers, logs: [{ path }] })}`, '--test=true'], asUser);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`logs[0].path: cannot open "${path}"`);
    expect(res.stderr).toContain(reason);
    expect(res.stdout).not.toMatch(/OK/);
  });

  it.each(cases)('%s: the start exits 1 naming the path and the reason, before listening, and leaves no pidfile', async (_what, path, reason, asUser) => {
    const pidfile = join(dir, 'open', `refused-${++fileCount}.pid`);
    const res = await run([`--config=${configFile({ servers, logs: [{ path }], pidfile })}`], asUser);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`logs[0].path: cannot open "${path}"`);
    expect(res.stderr).toContain(reason);
    expect(res.stdout).not.toMatch(/listening|gateway started/);
    expect(existsSync(pidfile)).toBe(false);
  });

  it('positive control: as the same user, with a path it may write, --test=true passes and the gateway starts, writes its pidfile and logs', async () => {
    const log = join(dir, 'open', 'fine.log');
    const pidfile = join(dir, 'open', 'fine.pid');
    const check = await run([`--config=${configFile({ servers, logs: [{ path: log }], pidfile })}`, '--test=true'], user);
    expect(check).toMatchObject({ code: 0, stderr: '' });
    const gw = await spawnGateway({ config: { logs: [{ path: log }], pidfile }, ...user });
    running.push(gw);
    expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(gw.pid));
    expect(await gw.stop('SIGTERM')).toBe(0);
    if (isRoot) expect(statSync(log).uid).toBe(NOBODY);
    expect(readFileSync(log, 'utf8')).toMatch(/gateway started/);
    expect(existsSync(pidfile)).toBe(false);
  });
});

describe('a log destination that fails while the gateway runs', () => {
  it('a file whose writes fail (ENOSPC from /dev/full) is reported once; the gateway keeps serving and logging elsewhere, and exits 0', async () => {
    // A regular file named /dev/full would prove nothing (and root could create one).
    expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
    const other = join(dir, 'beside-dev-full.log');
    const gw = await spawnGateway({ config: { logs: [{ path: '/dev/full' }, { path: other }] } });
    running.push(gw);
    for (let i = 0; i < 5; i++) expect((await logSomething(gw)).status).toBe(400);
    await waitFor('the report', () => gw.stderr().includes('/dev/full'));
    expect((await getStatus(gw.adminUrl)).version).toBe(7);
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect(occurrences(gw.stderr(), 'log file "/dev/full": cannot write to it')).toBe(1);
    expect(gw.stderr()).toMatch(/ENOSPC/);
    const reports = gw.logs.filter((r) => r.path === '/dev/full');
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ code: 'ENOSPC', level: 50 });
    const lines = readFileSync(other, 'utf8');
    expect(occurrences(lines, 'publish refused')).toBe(5);
    expect(lines).toMatch(/cannot write to it/);
    expect(lines).toMatch(/gateway closed/);
  });

  it('a SIGHUP reopen onto a path it cannot open is reported; it keeps the file it had, and a later SIGHUP reopens', async () => {
    const log = join(dir, 'rotated.log');
    const gw = await spawnGateway({ config: { logs: [{ path: log }] } });
    running.push(gw);
    // logrotate moves the file away; something leaves a directory where the file was.
    renameSync(log, `${log}.1`);
    mkdirSync(log);
    process.kill(gw.pid, 'SIGHUP');
    await waitFor('the report', () => gw.stderr().includes('cannot reopen'));
    expect(gw.stderr()).toContain(`log file "${log}": cannot reopen it; still writing to the file opened before: EISDIR`);
    expect((await logSomething(gw)).status).toBe(400);
    expect((await getStatus(gw.adminUrl)).version).toBe(7);
    await waitFor('the line in the old file', () => readFileSync(`${log}.1`, 'utf8').includes('publish refused'));

    rmdirSync(log);
    process.kill(gw.pid, 'SIGHUP');
    await waitFor('the reopened file', () => existsSync(log));
    expect((await logSomething(gw)).status).toBe(400);
    expect(await gw.stop('SIGTERM')).toBe(0);
    const fresh = readFileSync(log, 'utf8');
    expect(fresh).toMatch(/publish refused/);
    expect(fresh).toMatch(/gateway closed/);
    expect(readFileSync(`${log}.1`, 'utf8')).not.toMatch(/gateway closed/);
    expect(occurrences(gw.stderr(), 'cannot reopen')).toBe(1);
  });

  it("stdout whose reader went away (EPIPE) is reported once on stderr; the gateway keeps serving and writing its log file", async () => {
    const log = join(dir, 'stdout-gone.log');
    const gw = await spawnGateway({ config: { logs: [{ path: log }] } });
    running.push(gw);
    gw.child.stdout!.destroy();
    for (let i = 0; i < 3; i++) expect((await logSomething(gw)).status).toBe(400);
    await waitFor('the report', () => gw.stderr().includes('console output failed'));
    expect(gw.stderr()).toMatch(/EPIPE/);
    expect((await getStatus(gw.adminUrl)).version).toBe(7);
    expect(gw.child.exitCode).toBeNull();
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect(occurrences(gw.stderr(), 'console output failed')).toBe(1);
    const lines = readFileSync(log, 'utf8');
    expect(occurrences(lines, 'publish refused')).toBe(3);
    expect(lines).toMatch(/console output failed/);
    expect(lines).toMatch(/gateway closed/);
  });
});
