/**
 * deploy/systemd: the unit and its sysusers file, checked by systemd's own tools without a
 * running systemd (`systemd-analyze verify` and `security --offline`, `systemd-sysusers
 * --root`), against the gateway's shutdown timing, and by running the command line the
 * unit runs through the real CLI with --test=true. Not checked here: the service started
 * by systemd itself (this machine has no systemd as PID 1).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveConfig } from '@tidings/protocol';

const root = resolve(__dirname, '../..');
const UNIT = join(root, 'deploy/systemd/tidings.service');
const SYSUSERS = join(root, 'deploy/systemd/tidings.sysusers.conf');
const BIN = join(root, 'services/gateway/bin/tidings.js');
/** serve.ts exits by itself this long after the drain window if closing hangs. */
const HARD_STOP_AFTER_DRAIN_MS = 10_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      res({ code, stdout, stderr: `${stderr}${err && code === -1 ? `\n${cmd}: ${err.message}` : ''}` });
    });
  });
}

/** A unit file's sections: "Service" -> key -> values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      sections.set(section[1], (current = new Map()));
      continue;
    }
    const at = line.indexOf('=');
    const key = line.slice(0, at);
    current!.set(key, [...(current!.get(key) ?? []), line.slice(at + 1)]);
  }
  return sections;
}

/** systemd time span ("25s", "1min 30s", "500ms") in ms. */
function spanMs(value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  let total = 0;
  for (const part of value.trim().split(/\s+/)) {
    const m = /^(\d+)([a-z]*)$/.exec(part);
    if (!m || !((m[2] || 's') in units)) throw new Error(`unparsed time span ${value}`);
    total += Number(m[1]) * units[m[2] || 's'];
  }
  return total;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tidings-systemd-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The unit with ExecStart pointing at this checkout's `tidings` (verify wants an executable there). */
function unitHere(text = readFileSync(UNIT, 'utf8')): string {
  const file = join(dir, 'tidings.service');
  const replaced = text.replace('ExecStart=/usr/local/bin/tidings ', `ExecStart=${BIN} `);
  if (replaced === text) throw new Error('the unit no longer runs /usr/local/bin/tidings: update this test');
  writeFileSync(file, replaced);
  return file;
}

describe('deploy/systemd/tidings.service', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));
  const service = unit.get('Service')!;
  const one = (key: string) => service.get(key)?.at(-1);

  it('systemd - runs tidings with the Aphlict config as a dedicated user, restarted on failure', () => {
    expect(one('ExecStart')).toBe('/usr/local/bin/tidings --config=/etc/tidings/aphlict.json');
    expect(one('User')).toBe('tidings');
    expect(one('Group')).toBe('tidings');
    expect(one('Restart')).toBe('on-failure');
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID'); // SIGHUP reopens the log files
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('systemd - SIGTERM, and a stop timeout past the drain window and the gateway\'s own hard stop', () => {
    expect(one('KillSignal')).toBe('SIGTERM');
    const drainMs = resolveConfig(undefined).shutdown.drainMs;
    expect(drainMs).toBe(10_000);
    // systemd's SIGKILL must come after the process's own deadline (drain + 10 s), which
    // logs why and removes the pidfile.
    expect(spanMs(one('TimeoutStopSec')!)).toBeGreaterThan(drainMs + HARD_STOP_AFTER_DRAIN_MS);
    expect(spanMs(one('TimeoutStopSec')!)).toBeLessThanOrEqual(drainMs + HARD_STOP_AFTER_DRAIN_MS + 10_000);
  });

  it('systemd - a high file limit and the hardening options; the log directory is the only writable path', () => {
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65_536);
    expect(Object.fromEntries(['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'RestrictSUIDSGID', 'LockPersonality'].map((k) => [k, one(k)]))).toEqual({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      RestrictSUIDSGID: 'yes',
      LockPersonality: 'yes',
    });
    expect(service.get('ReadWritePaths')).toEqual(['/var/log/tidings']);
    expect(one('LogsDirectory')).toBe('tidings');
    expect(one('CapabilityBoundingSet')).toBe('');
    // V8 writes the code it compiles: this one would stop the process at start.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
  });

  it('systemd - systemd-analyze verify accepts the unit without a warning (and flags a broken copy)', async () => {
    const ok = await run('systemd-analyze', ['verify', unitHere()]);
    expect({ code: ok.code, out: ok.stdout + ok.stderr }).toEqual({ code: 0, out: '' });
    // Positive control: verify reports a misspelt key and a bad time span (on stderr, exit 0).
    const broken = readFileSync(UNIT, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict').replace(/TimeoutStopSec=\S+/, 'TimeoutStopSec=25q');
    const bad = await run('systemd-analyze', ['verify', unitHere(broken)]);
    expect(bad.stderr).toContain("Unknown key 'ProtectSytem'");
    expect(bad.stderr).toContain('Failed to parse time value');
  });

  it('systemd - systemd-analyze security rates its exposure low (a unit without the hardening rates high)', async () => {
    const exposure = async (file: string) => {
      const r = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', file]);
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout + r.stderr);
      if (!m) throw new Error(`no exposure level in: ${r.stdout}${r.stderr}`);
      return Number(m[1]);
    };
    const hardened = await exposure(unitHere());
    expect(hardened).toBeLessThanOrEqual(2);
    const plain = readFileSync(UNIT, 'utf8')
      .split('\n')
      .filter((l) => !/^(NoNewPrivileges|Protect\w+|Private\w+|Restrict\w+|LockPersonality|RemoveIPC|CapabilityBoundingSet|AmbientCapabilities|SystemCall\w+|UMask)=/.test(l))
      .join('\n');
    expect(await exposure(unitHere(plain))).toBeGreaterThan(hardened + 4);
  });

  it('systemd - the command line it runs is one the tidings CLI accepts (--test=true on a config like the one it expects)', async () => {
    mkdirSync(join(dir, 'etc'), { recursive: true });
    const config = join(dir, 'etc/aphlict.json');
    writeFileSync(
      config,
      JSON.stringify({
        servers: [
          { type: 'client', port: 22280, listen: '0.0.0.0' },
          { type: 'admin', port: 22281, listen: '127.0.0.1' },
        ],
        logs: [{ path: join(dir, 'log/tidings/tidings.log') }],
      }),
    );
    const args = one('ExecStart')!.split(' ').slice(1).map((a) => a.replace('/etc/tidings/aphlict.json', config));
    const r = await run(process.execPath, [BIN, ...args, '--test=true']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    // Positive control: the same command on a config with a bad key fails.
    writeFileSync(config, JSON.stringify({ limits: { maxConnections: -1 } }));
    expect((await run(process.execPath, [BIN, ...args, '--test=true'])).code).toBe(1);
  });

  it('systemd - the sysusers file creates the tidings system user and group (systemd-sysusers --root)', async () => {
    const fakeRoot = join(dir, 'root');
    mkdirSync(join(fakeRoot, 'etc'), { recursive: true });
    const r = await run('systemd-sysusers', [`--root=${fakeRoot}`, SYSUSERS]);
    expect(r.code).toBe(0);
    const passwd = readFileSync(join(fakeRoot, 'etc/passwd'), 'utf8');
    const entry = /^tidings:x:(\d+):(\d+):[^:]*:\/nonexistent:\/usr\/sbin\/nologin$/m.exec(passwd);
    expect(entry).not.toBeNull();
    expect(Number(entry![1])).toBeLessThan(1000); // a system user
    expect(readFileSync(join(fakeRoot, 'etc/group'), 'utf8')).toMatch(new RegExp(`^tidings:x:${entry![2]}:`, 'm'));
  });
});
