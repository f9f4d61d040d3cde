/** The `tidings` CLI as operators run it: `node services/gateway/dist/main.js ...` as a process. */
import { execFile } from 'node:child_process';
import {
  GATEWAY_MAIN,
  connectSocket,
  freePort,
  getStatus,
  messagesOf,
  spawnGateway,
  type GatewayProcess,
  type TestSocket,
} from '@tidings/testing';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tidings(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The indented lines under a heading of `tidings status` (up to the next heading). */
function section(stdout: string, heading: string): string[] {
  const lines = stdout.split('\n');
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`no heading "${heading}" in:\n${stdout}`);
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('  ')) break;
    out.push(line.trim());
  }
  return out;
}

describe('tidings CLI', () => {
  let gateway: GatewayProcess;
  let socket: TestSocket;

  beforeAll(async () => {
    gateway = await spawnGateway();
    socket = await connectSocket(`${gateway.clientUrl}/~acme/`);
    socket.send('subscribe', ['PHID-USER-cli']);
    await socket.roundTrip();
  });
  afterAll(async () => {
    await socket?.close();
    await gateway?.kill();
  });

  it('cli - notify publishes to the instance and prints the receipt with the node fingerprint', async () => {
    const run = await tidings(
      'notify',
      '--admin', gateway.adminUrl,
      '--instance', 'acme',
      '--subscribers', 'PHID-USER-cli,PHID-USER-other',
      '--type', 'notification',
      '--key', '4242',
      '--data', '{"extra":"é"}',
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`fingerprint ${gateway.fingerprint}`);
    expect(run.stdout).toContain('instance "acme"');
    await socket.waitFor((r) => messagesOf(r).length === 1, 5_000, 'the notification');
    const got = messagesOf(socket.received)[0];
    expect(got).toMatchObject({ type: 'notification', key: '4242', extra: 'é', subscribers: ['PHID-USER-cli', 'PHID-USER-other'] });
    expect(got.uniqueID).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(run.stdout).toContain(String(got.uniqueID));
  });

  it('cli - notify --json prints the receipt as JSON', async () => {
    const run = await tidings('notify', '--admin', gateway.adminUrl, '--subscribers', 'PHID-USER-nobody', '--json');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.receipt).toEqual({ fingerprint: gateway.fingerprint });
    expect(out.instance).toBe('default');
  });

  it('cli - status prints the node readably, the instance\'s figures apart from the whole node\'s, and --json the raw /status/ object', async () => {
    // Two more sockets on another instance: the node's count differs from acme's.
    const others = [await connectSocket(`${gateway.clientUrl}/~other/`), await connectSocket(`${gateway.clientUrl}/~other/`)];
    try {
      const run = await tidings('status', '--admin', gateway.adminUrl, '--instance', 'acme');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^node\s+http:\/\/127\.0\.0\.1:\d+ \(Tidings /m);
      expect(run.stdout).toMatch(new RegExp(`^fingerprint\\s+${gateway.fingerprint}$`, 'm'));
      expect(run.stdout).toMatch(/^ready\s+yes$/m);
      const instance = section(run.stdout, 'instance acme');
      const node = section(run.stdout, 'whole node (all instances)');
      expect(instance).toContainEqual(expect.stringMatching(/^clients\s+1 active, 1 connections ever$/));
      expect(instance).toContainEqual(expect.stringMatching(/^history\s+\d+ messages/));
      expect(node).toContainEqual(expect.stringMatching(/^clients\s+3 active$/));
      expect(node).toContainEqual(expect.stringMatching(/^messages\s+\d+ in, \d+ delivered/));
      expect(node).toContainEqual(expect.stringMatching(/^relay peers\s+none$|^socket\.io\s+/));
      // Nothing node-wide is listed as the instance's.
      expect(instance.filter((l) => /^(messages|socket\.io|relay|bus)/.test(l))).toEqual([]);
      const other = await tidings('status', '--admin', gateway.adminUrl, '--instance', 'other');
      expect(section(other.stdout, 'instance other')).toContainEqual(expect.stringMatching(/^clients\s+2 active, 2 connections ever$/));
      expect(section(other.stdout, 'whole node (all instances)')).toContainEqual(expect.stringMatching(/^clients\s+3 active$/));
    } finally {
      await Promise.all(others.map((o) => o.close()));
    }

    const json = await tidings('status', '--admin', gateway.adminUrl, '--instance', 'acme', '--json');
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout);
    const direct = await getStatus(gateway.adminUrl, 'acme');
    expect(status.fingerprint).toBe(direct.fingerprint);
    expect(status['clients.active']).toBe(1);
  });

  it('cli - an unreachable server is a clear error and exit code 1', async () => {
    const port = await freePort();
    for (const command of ['notify', 'status']) {
      const args = command === 'notify' ? ['--subscribers', 'PHID-X'] : [];
      const run = await tidings(command, '--admin', `http://127.0.0.1:${port}`, ...args);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(`tidings: cannot reach http://127.0.0.1:${port}: connection refused (is a Tidings or Aphlict admin server listening there?)\n`);
    }
  });

  it('cli - bad arguments are named and exit with code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['notify', '--subscribers', 'PHID-X'], /required option '--admin <url>'/],
      [['notify', '--admin', gateway.adminUrl], /required option '--subscribers <phids>'/],
      [['notify', '--admin', gateway.adminUrl, '--subscribers', ' , '], /--subscribers: give at least one PHID/],
      [['notify', '--admin', gateway.adminUrl, '--subscribers', 'P', '--data', '{oops'], /--data: not JSON/],
      [['notify', '--admin', gateway.adminUrl, '--subscribers', 'P', '--data', '[1]'], /--data: must be a JSON object/],
      [['notify', '--admin', 'ftp://x', '--subscribers', 'P'], /--admin: "ftp:\/\/x" must be an http/],
      [['status', '--admin', gateway.adminUrl, '--timeout', 'soon'], /--timeout: "soon" is not a positive whole number/],
      [['status', '--admin', gateway.adminUrl, '--bogus'], /unknown option '--bogus'/],
      [['--bogus'], /unknown option '--bogus'/],
      [['status', '--admin', gateway.adminUrl, '--token', 'has a space'], /--token \(or TIDINGS_TOKEN\): must be one run of visible ASCII/],
    ];
    for (const [args, message] of cases) {
      const run = await tidings(...args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(message);
    }
  });

  it('cli - a mistyped command is named as the unknown command, with the commands there are', async () => {
    const cases: [string[], RegExp][] = [
      [['statu', '--admin', gateway.adminUrl], /^error: unknown command 'statu' \(did you mean 'status'\?\); the commands are notify, status, token$/m],
      [['nottify', '--admin', gateway.adminUrl, '--subscribers', 'P'], /^error: unknown command 'nottify' \(did you mean 'notify'\?\)/m],
      [['publish', '--admin', gateway.adminUrl], /^error: unknown command 'publish'; the commands are notify, status, token$/m],
      [['--config=/nonexistent.json', 'extra'], /^error: unknown command 'extra'/m],
    ];
    for (const [args, message] of cases) {
      const run = await tidings(...args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(message);
      // Not mistaken for a server option.
      expect(run.stderr).not.toMatch(/unknown option/);
    }
    const help = await tidings('help', 'status');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tidings status');
  });

  it('cli - a refused publish reports the server answer and exits 1', async () => {
    const run = await tidings('notify', '--admin', gateway.adminUrl, '--instance', 'x'.repeat(300), '--subscribers', 'P');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/refused the message: 400 invalid_instance: /);
  });

  it('cli - --help lists the server options and every command; the Aphlict-style root still checks configs', async () => {
    const help = await tidings('--help');
    expect(help.code).toBe(0);
    for (const word of ['--config', '--test', '--debug', 'notify', 'status']) expect(help.stdout).toContain(word);
    const notifyHelp = await tidings('notify', '--help');
    for (const word of ['--admin', '--instance', '--subscribers', '--type', '--key', '--data']) expect(notifyHelp.stdout).toContain(word);
    const statusHelp = await tidings('status', '--help');
    for (const word of ['--admin', '--instance', '--json', '--token', 'TIDINGS_TOKEN']) expect(statusHelp.stdout).toContain(word);
    expect(notifyHelp.stdout).toContain('--token');
    const check = await tidings('--test=true');
    expect(check).toMatchObject({ code: 0, stdout: 'tidings: configuration OK\n' });
  });
});
