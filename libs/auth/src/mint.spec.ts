import { createClientTokenVerifier } from './client-tokens';
import { MintError, mintClientToken, parseTtl } from './mint';

const SECRET = 'mint-secret-0123456789abcdef0123456789';
const NOW = Date.UTC(2030, 5, 1);

describe('mintClientToken', () => {
  const verifier = createClientTokenVerifier({ mode: 'required', hmacSecret: SECRET });

  it('mints an HS256 token the verifier accepts, with its claims', async () => {
    const token = await mintClientToken({ secret: SECRET, phids: ['PHID-USER-a', 'PHID-PROJ-*'], ttlSeconds: 3_600, instance: 'acme', sub: 'alice', now: NOW });
    const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString());
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' });
    const result = await verifier.verify(token, { instance: 'acme', now: NOW });
    expect(result).toMatchObject({ ok: true, grant: { sub: 'alice', instance: 'acme', expiresAt: NOW + 3_600_000 } });
    if (result.ok) expect([result.grant.allows('PHID-PROJ-9'), result.grant.allows('PHID-USER-b')]).toEqual([true, false]);
    expect((await verifier.verify(token, { instance: 'acme', now: NOW + 3_600_000 })).ok).toBe(false);
  });

  it('sets iss and aud when asked, so a strict verifier accepts it', async () => {
    const strict = createClientTokenVerifier({ hmacSecret: SECRET, issuer: 'phorge', audience: 'tidings' });
    const plain = await mintClientToken({ secret: SECRET, phids: ['*'], ttlSeconds: 60, now: NOW });
    expect(await strict.verify(plain, { instance: 'default', now: NOW })).toMatchObject({ ok: false, reason: 'wrong_issuer' });
    const full = await mintClientToken({ secret: SECRET, phids: ['*'], ttlSeconds: 60, issuer: 'phorge', audience: 'tidings', now: NOW });
    expect((await strict.verify(full, { instance: 'default', now: NOW })).ok).toBe(true);
  });

  it('refuses what the verifier would refuse', async () => {
    await expect(mintClientToken({ secret: 'short', phids: ['P'], ttlSeconds: 60 })).rejects.toThrow(MintError);
    await expect(mintClientToken({ secret: SECRET, phids: ['P-*-x'], ttlSeconds: 60 })).rejects.toThrow(/only at its end/);
    await expect(mintClientToken({ secret: SECRET, phids: [''], ttlSeconds: 60 })).rejects.toThrow(/non-empty/);
    await expect(mintClientToken({ secret: SECRET, phids: ['P'], ttlSeconds: 0 })).rejects.toThrow(/lifetime/);
  });
});

describe('parseTtl', () => {
  it.each([
    ['90', 90],
    ['45s', 45],
    ['30m', 1_800],
    ['1h', 3_600],
    ['7d', 604_800],
    [' 2h ', 7_200],
  ])('%j is %d seconds', (text, seconds) => {
    expect(parseTtl(text)).toBe(seconds);
  });

  it.each(['', '0', '0h', '-1h', '1.5h', '1w', 'h', '1 h', '1h30m', '99999999999999999999d'])('%j is not a lifetime', (text) => {
    expect(parseTtl(text)).toBeUndefined();
  });
});
