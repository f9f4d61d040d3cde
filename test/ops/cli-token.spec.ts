/**
 * `tidings token` as operators and tests run it: a real process whose token the auth lib
 * accepts; and `--test=true` checking the client token key file.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClientTokenVerifier } from '@tidings/auth';
import { GATEWAY_MAIN } from '@tidings/testing';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tidings(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const SECRET = 'cli-token-secret-0123456789abcdef-XYZ';

describe('tidings token', () => {
  let dir: string;
  let secretFile: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tidings-token-'));
    secretFile = join(dir, 'hmac');
    // With the final newline an editor or `echo` leaves.
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'short'), 'too-short\n');
    writeFileSync(join(dir, 'empty'), '\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('token - prints an HS256 token that the auth lib verifies with the same secret, with its claims', async () => {
    const before = Date.now();
    const run = await tidings('token', '--secret-file', secretFile, '--phids', 'PHID-USER-a, PHID-PROJ-*', '--ttl', '1h', '--instance', 'acme', '--sub', 'PHID-USER-a');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = run.stdout.trim();

    const verifier = createClientTokenVerifier({ mode: 'required', hmacSecret: SECRET });
    const result = await verifier.verify(token, { instance: 'acme' });
    if (!result.ok) throw new Error(`refused: ${result.reason} ${result.message}`);
    expect(result.grant).toMatchObject({ sub: 'PHID-USER-a', instance: 'acme' });
    expect(result.grant.filter(['PHID-USER-a', 'PHID-PROJ-7', 'PHID-USER-b'])).toEqual({ allowed: ['PHID-USER-a', 'PHID-PROJ-7'], refused: ['PHID-USER-b'] });
    expect(result.grant.expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1_000) * 1_000 + 3_600_000);
    expect(result.grant.expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000);

    // Positive controls: the same token fails for another instance and for another secret.
    expect(await verifier.verify(token, { instance: 'other' })).toMatchObject({ ok: false, reason: 'wrong_instance' });
    const otherSecret = createClientTokenVerifier({ hmacSecret: 'x'.repeat(40) });
    expect(await otherSecret.verify(token, { instance: 'acme' })).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('token - --issuer and --audience satisfy a server that checks them', async () => {
    const strict = createClientTokenVerifier({ hmacSecret: SECRET, issuer: 'phorge', audience: 'tidings' });
    const run = await tidings('token', '--secret-file', secretFile, '--phids', '*', '--ttl', '90', '--issuer', 'phorge', '--audience', 'tidings');
    expect(run.code).toBe(0);
    expect((await strict.verify(run.stdout.trim(), { instance: 'default' })).ok).toBe(true);
    const plain = await tidings('token', '--secret-file', secretFile, '--phids', '*', '--ttl', '90');
    expect(await strict.verify(plain.stdout.trim(), { instance: 'default' })).toMatchObject({ ok: false, reason: 'wrong_issuer' });
  });

  it('token - bad arguments are named and exit with code 2, and the secret is never printed', async () => {
    const cases: [string[], RegExp][] = [
      [['token', '--phids', 'P', '--ttl', '1h'], /required option '--secret-file <file>'/],
      [['token', '--secret-file', secretFile, '--ttl', '1h'], /required option '--phids <phids>'/],
      [['token', '--secret-file', secretFile, '--phids', 'P'], /required option '--ttl <duration>'/],
      [['token', '--secret-file', join(dir, 'absent'), '--phids', 'P', '--ttl', '1h'], /--secret-file: cannot read ".*absent": ENOENT/],
      [['token', '--secret-file', join(dir, 'empty'), '--phids', 'P', '--ttl', '1h'], /--secret-file: ".*empty" is empty/],
      [['token', '--secret-file', join(dir, 'short'), '--phids', 'P', '--ttl', '1h'], /--secret-file: the secret must be at least 32 characters/],
      [['token', '--secret-file', secretFile, '--phids', ' , ', '--ttl', '1h'], /--phids: give at least one PHID/],
      [['token', '--secret-file', secretFile, '--phids', 'PHID-*-x', '--ttl', '1h'], /--phids: "phids"\[0\] may hold "\*" only at its end/],
      [['token', '--secret-file', secretFile, '--phids', 'P', '--ttl', 'forever'], /--ttl: "forever" is not a lifetime/],
      [['token', '--secret-file', secretFile, '--phids', 'P', '--ttl', '0'], /--ttl: "0" is not a lifetime/],
    ];
    for (const [args, message] of cases) {
      const run = await tidings(...args);
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toContain(SECRET);
      expect(run.stderr).not.toContain('too-short');
    }
  });

  it('token - --help lists its options', async () => {
    const help = await tidings('token', '--help');
    expect(help.code).toBe(0);
    for (const word of ['--secret-file', '--phids', '--ttl', '--instance', '--sub', '--issuer', '--audience']) expect(help.stdout).toContain(word);
    expect((await tidings('--help')).stdout).toContain('token');
  });
});

describe('tidings --test=true with client tokens', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tidings-authcheck-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function configWith(clientTokens: Record<string, unknown>): string {
    const file = join(dir, `aphlict-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        servers: [{ type: 'client', port: 0, listen: '127.0.0.1' }, { type: 'admin', port: 0, listen: '127.0.0.1' }],
        auth: { clientTokens: { mode: 'required', ...clientTokens } },
      }),
    );
    return file;
  }

  it('auth check - accepts a usable public key file', async () => {
    const keyFile = join(dir, 'ed25519.pem');
    writeFileSync(keyFile, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    const run = await tidings(`--config=${configWith({ publicKeyFile: keyFile })}`, '--test=true');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it('auth check - names auth.clientTokens.publicKeyFile when it is missing, private or of the wrong type, and exits 1', async () => {
    const privateFile = join(dir, 'private.pem');
    writeFileSync(privateFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const p384File = join(dir, 'p384.pem');
    writeFileSync(p384File, generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }));
    for (const [keyFile, message] of [
      [join(dir, 'absent.pem'), /auth\.clientTokens\.publicKeyFile: cannot read ".*absent\.pem"/],
      [privateFile, /auth\.clientTokens\.publicKeyFile: holds a private key/],
      [p384File, /auth\.clientTokens\.publicKeyFile: an EC key must be on P-256/],
    ] as const) {
      const run = await tidings(`--config=${configWith({ publicKeyFile: keyFile })}`, '--test=true');
      expect({ keyFile, code: run.code }).toEqual({ keyFile, code: 1 });
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toContain('PRIVATE KEY');
    }
  });
});
