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

  it('cli - status prints the node readably, and --json the raw /status/ object', async () => {
    const run = await tidings('status', '--admin', gateway.adminUrl, '--instance', 'acme');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^node\s+http:\/\/127\.0\.0\.1:\d+ \(Tidings /m);
    expect(run.stdout).toMatch(new RegExp(`^fingerprint\\s+${gateway.fingerprint}$`, 'm'));
    expect(run.stdout).toMatch(/^instance\s+acme$/m);
    expect(run.stdout).toMatch(/^clients\s+1 active/m);
    expect(run.stdout).toMatch(/^ready\s+yes$/m);

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
    ];
    for (const [args, message] of cases) {
      const run = await tidings(...args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(message);
    }
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
    for (const word of ['--admin', '--instance', '--json']) expect(statusHelp.stdout).toContain(word);
    const check = await tidings('--test=true');
    expect(check).toMatchObject({ code: 0, stdout: 'tidings: configuration OK\n' });
  });
});
