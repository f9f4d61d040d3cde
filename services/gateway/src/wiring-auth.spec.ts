import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { ConfigError, resolveConfig } from '@tidings/protocol';
import { createAuthCollaborators } from './wiring-auth';

const MINIMAL = { servers: [{ type: 'client', port: 0, listen: '127.0.0.1' }, { type: 'admin', port: 0, listen: '127.0.0.1' }] };
const TOKEN = 'wiring-admin-token-0123456789';

describe('createAuthCollaborators', () => {
  it("is inert with Aphlict's defaults: the admin gate lets everything in, tokens are not asked for, no limiter", () => {
    const auth = createAuthCollaborators(resolveConfig(MINIMAL), () => {
      throw new Error('no file should be read');
    });
    expect(auth.adminAuth.enabled).toBe(false);
    expect(auth.adminAuth.check({ method: 'POST', url: '/?instance=x', headers: {} })).toEqual({ ok: true, via: 'off', url: '/?instance=x' });
    expect(auth.clientTokens.required).toBe(false);
    expect(auth.publishLimiter).toBeUndefined();
    expect(auth.clientAddress.resolve('203.0.113.1', '127.0.0.1')).toBe('203.0.113.1');
  });

  it('builds every part from auth.* and limits.*, reading the public key file', async () => {
    const ed = generateKeyPairSync('ed25519');
    const pem = ed.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const read: string[] = [];
    const config = resolveConfig({
      ...MINIMAL,
      auth: { adminTokens: [TOKEN], adminAllow: ['10.0.0.0/8'], clientTokens: { mode: 'required', publicKeyFile: '/keys/ed.pem' } },
      limits: { trustProxy: ['127.0.0.1'], maxPublishesPerSecond: 2 },
    });
    const auth = createAuthCollaborators(config, (path) => (read.push(path), pem));
    expect(read).toEqual(['/keys/ed.pem']);
    expect(auth.adminAuth.check({ method: 'GET', url: `/${TOKEN}/status/`, headers: {} })).toMatchObject({ ok: true, via: 'path', url: '/status/' });
    expect(auth.adminAuth.check({ method: 'GET', url: '/status/', headers: {}, remoteAddress: '10.1.1.1' })).toMatchObject({ ok: true, via: 'allowed_address' });
    expect(auth.adminAuth.check({ method: 'GET', url: '/status/', headers: {}, remoteAddress: '11.1.1.1' }).ok).toBe(false);
    expect(auth.clientTokens).toMatchObject({ required: true, algorithms: ['EdDSA', 'Ed25519'] });
    const token = await new SignJWT({ phids: ['PHID-USER-a'], exp: Math.floor(Date.now() / 1_000) + 60 }).setProtectedHeader({ alg: 'EdDSA' }).sign(ed.privateKey);
    expect((await auth.clientTokens.verify(token, { instance: 'default' })).ok).toBe(true);
    expect(auth.clientAddress.resolve('127.0.0.1', '203.0.113.1')).toBe('203.0.113.1');
    expect([auth.publishLimiter?.take('k').ok, auth.publishLimiter?.take('k').ok, auth.publishLimiter?.take('k').ok]).toEqual([true, true, false]);
  });

  it('names auth.clientTokens.publicKeyFile when the file cannot be read or used', () => {
    const config = resolveConfig({ ...MINIMAL, auth: { clientTokens: { mode: 'required', publicKeyFile: '/keys/k.pem' } } });
    const missing = () =>
      createAuthCollaborators(config, () => {
        throw new Error('ENOENT: no such file');
      });
    expect(missing).toThrow(ConfigError);
    expect(missing).toThrow(/auth\.clientTokens\.publicKeyFile: cannot read "\/keys\/k\.pem": ENOENT/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => createAuthCollaborators(config, () => p384)).toThrow(/auth\.clientTokens\.publicKeyFile: an EC key must be on P-256/);
    expect(() => createAuthCollaborators(config, () => 'not a key')).toThrow(/auth\.clientTokens\.publicKeyFile: not a PEM public key/);
  });
});
