/**
 * `tidings notify` and `tidings status` against a real gateway process whose admin port
 * requires a token (`auth.adminTokens`): refused (exit 1, 401) without one or with a wrong
 * one; accepted with `--token`, with TIDINGS_TOKEN, and with the token as the `--admin`
 * path prefix (Phorge's form); the message reaches a subscribed socket.
 *
 * NEEDS THE LEAD'S ADMIN-PORT WIRING (admin-app.ts enforcing auth.adminTokens): until it
 * lands the admin port lets everything in, and the refusals below fail.
 */
import { execFile } from 'node:child_process';
import { connectSocket, GATEWAY_MAIN, messagesOf, spawnGateway, type GatewayProcess, type TestSocket } from '@tidings/testing';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tidings(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { TIDINGS_TOKEN: _ignored, ...base } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { timeout: 20_000, env: { ...base, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const TOKEN = 'gateway-admin-token-0123456789';
const OLD_TOKEN = 'rotated-admin-token-0123456789';
const PHID = 'PHID-USER-cli-auth';

let gateway: GatewayProcess;
let socket: TestSocket;

beforeAll(async () => {
  gateway = await spawnGateway({ config: { auth: { adminTokens: [TOKEN, OLD_TOKEN] } } });
  socket = await connectSocket(`${gateway.clientUrl}/~acme/`);
  socket.send('subscribe', [PHID]);
  await socket.roundTrip();
});

afterAll(async () => {
  await socket?.close();
  await gateway?.kill();
});

describe('tidings CLI against a gateway with admin tokens (needs the admin-port wiring)', () => {
  it('cli auth gateway - without a token, or with a wrong one, notify and status exit 1 with the 401 and what to do', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['notify', '--admin', gateway.adminUrl, '--subscribers', PHID, '--instance', 'acme'], {}, /refused the message: 401 unauthorized: .*\(give a token with --token or TIDINGS_TOKEN/],
      [['status', '--admin', gateway.adminUrl], {}, /\/status\/ answered 401 unauthorized: .*\(give a token/],
      [['notify', '--admin', gateway.adminUrl, '--subscribers', PHID, '--instance', 'acme', '--token', 'wrong-token-0123456789abc'], {}, /401 unauthorized: .*\(the token given was refused\)/],
      [['status', '--admin', `${gateway.adminUrl}/wrong-token-0123456789abc`], {}, /answered 401 unauthorized: .*\(the token given was refused\)/],
    ];
    for (const [args, env, message] of cases) {
      const run = await tidings(args, env);
      expect({ args, code: run.code }).toEqual({ args, code: 1 });
      expect(run.stderr).toMatch(message);
    }
    expect(messagesOf(socket.received)).toEqual([]);
  });

  it('cli auth gateway - --token, TIDINGS_TOKEN (either of the rotated tokens) and the token as --admin path prefix are accepted', async () => {
    const runs = [
      await tidings(['notify', '--admin', gateway.adminUrl, '--subscribers', PHID, '--instance', 'acme', '--key', 'flag', '--token', TOKEN]),
      await tidings(['notify', '--admin', gateway.adminUrl, '--subscribers', PHID, '--instance', 'acme', '--key', 'env'], { TIDINGS_TOKEN: OLD_TOKEN }),
      await tidings(['notify', '--admin', `${gateway.adminUrl}/${TOKEN}`, '--subscribers', PHID, '--instance', 'acme', '--key', 'path']),
    ];
    for (const run of runs) {
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`fingerprint ${gateway.fingerprint}`);
      for (const secret of [TOKEN, OLD_TOKEN]) expect(run.stdout).not.toContain(secret);
    }
    await socket.waitFor((r) => messagesOf(r).length === 3, 5_000, 'the three notifications');
    expect(messagesOf(socket.received).map((m) => m.key)).toEqual(['flag', 'env', 'path']);

    for (const [args, env] of [
      [['status', '--admin', gateway.adminUrl, '--instance', 'acme', '--token', TOKEN], {}],
      [['status', '--admin', gateway.adminUrl, '--instance', 'acme'], { TIDINGS_TOKEN: TOKEN }],
      [['status', '--admin', `${gateway.adminUrl}/${TOKEN}/`, '--instance', 'acme']],
    ] as [string[], Record<string, string>?][]) {
      const run = await tidings(args, env);
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(run.stdout).toMatch(/^ready\s+yes$/m);
      expect(run.stdout).toMatch(/^ {2}clients\s+1 active, 1 connections ever$/m);
      expect(run.stdout).not.toContain(TOKEN);
    }
  });
});
