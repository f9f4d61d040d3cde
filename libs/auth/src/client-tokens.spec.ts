/**
 * Client token verification with real keys (RSA 2048, EC P-256, Ed25519, generated per
 * run) and tokens signed by jose, as a backend would sign them.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CompactSign, SignJWT, type JWTPayload } from 'jose';
import { ClientTokenConfigError, createClientTokenVerifier, type ClientTokenReason, type ClientTokenResult, type ClientTokenVerifier } from './client-tokens';

const SECRET = 'hs256-secret-of-at-least-32-chars!!';
const OTHER_SECRET = 'another-secret-of-at-least-32-chars';
const NOW = Date.UTC(2030, 0, 1); // a fixed clock: every test passes `now`
const NOW_S = NOW / 1_000;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const CLAIMS = { phids: ['PHID-USER-alice', 'PHID-PROJ-*'], exp: NOW_S + 3_600 };

async function sign(key: KeyObject | Uint8Array, alg: string, claims: JWTPayload = CLAIMS, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(key);
}
const hmac = (secret: string) => new TextEncoder().encode(secret);

/** A correctly HS256-signed token with any header and payload bytes, bypassing jose's own checks on what it signs. */
function rawHs256(header: unknown, payload: string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

async function refusal(verifier: ClientTokenVerifier, token: string | undefined, instance = 'default'): Promise<Extract<ClientTokenResult, { ok: false }>> {
  const result = await verifier.verify(token, { instance, now: NOW });
  if (result.ok) throw new Error('expected a refusal');
  if (token) expect(result.message).not.toContain(token);
  return result;
}

async function reasonFor(verifier: ClientTokenVerifier, token: string | undefined, instance = 'default'): Promise<ClientTokenReason> {
  return (await refusal(verifier, token, instance)).reason;
}

describe('client token verifier', () => {
  const hs = createClientTokenVerifier({ mode: 'required', hmacSecret: SECRET });
  const rs = createClientTokenVerifier({ mode: 'required', publicKeyPem: pem(rsa.publicKey) });
  const es = createClientTokenVerifier({ mode: 'required', publicKeyPem: pem(ec.publicKey) });
  const eddsa = createClientTokenVerifier({ mode: 'required', publicKeyPem: pem(ed.publicKey) });
  const both = createClientTokenVerifier({ mode: 'required', hmacSecret: SECRET, publicKeyPem: pem(rsa.publicKey) });

  describe('accepts', () => {
    it.each([
      ['HS256 with the secret', () => hs, () => sign(hmac(SECRET), 'HS256')],
      ['RS256 with the RSA public key', () => rs, () => sign(rsa.privateKey, 'RS256')],
      ['ES256 with the P-256 public key', () => es, () => sign(ec.privateKey, 'ES256')],
      ['EdDSA with the Ed25519 public key', () => eddsa, () => sign(ed.privateKey, 'EdDSA')],
      ['Ed25519 (RFC 9864 name) with the Ed25519 public key', () => eddsa, () => sign(ed.privateKey, 'Ed25519')],
      ['HS256 where both a secret and a key are configured', () => both, () => sign(hmac(SECRET), 'HS256')],
      ['RS256 where both a secret and a key are configured', () => both, () => sign(rsa.privateKey, 'RS256')],
    ])('%s', async (_what, verifier, token) => {
      const result = await verifier().verify(await token(), { instance: 'default', now: NOW });
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(result.grant.expiresAt).toBe((NOW_S + 3_600) * 1_000);
      expect(result.grant.allows('PHID-USER-alice')).toBe(true);
      expect(result.grant.allows('PHID-PROJ-42')).toBe(true);
      expect(result.grant.allows('PHID-USER-bob')).toBe(false);
    });

    it('a token from an X.509 certificate-less PKCS#1 RSA key too', async () => {
      const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string;
      const verifier = createClientTokenVerifier({ publicKeyPem: pkcs1 });
      expect((await verifier.verify(await sign(rsa.privateKey, 'RS256'), { instance: 'x', now: NOW })).ok).toBe(true);
    });

    it('with sub and instance claims, carried on the grant', async () => {
      const token = await sign(hmac(SECRET), 'HS256', { ...CLAIMS, sub: 'PHID-USER-alice', instance: 'acme' });
      const result = await hs.verify(token, { instance: 'acme', now: NOW });
      expect(result).toMatchObject({ ok: true, grant: { sub: 'PHID-USER-alice', instance: 'acme' } });
    });

    it('issuer and audience when configured and matching (aud may be a list)', async () => {
      const strict = createClientTokenVerifier({ hmacSecret: SECRET, issuer: 'phorge', audience: 'tidings' });
      for (const aud of ['tidings', ['other', 'tidings']]) {
        const token = await sign(hmac(SECRET), 'HS256', { ...CLAIMS, iss: 'phorge', aud });
        expect((await strict.verify(token, { instance: 'default', now: NOW })).ok).toBe(true);
      }
    });

    it('within the configured clock tolerance', async () => {
      const tolerant = createClientTokenVerifier({ hmacSecret: SECRET, clockToleranceSeconds: 30 });
      const token = await sign(hmac(SECRET), 'HS256', { ...CLAIMS, exp: NOW_S - 10 });
      expect((await tolerant.verify(token, { instance: 'default', now: NOW })).ok).toBe(true);
      expect(await reasonFor(hs, token)).toBe('expired');
    });
  });

  describe('refuses, with a stable reason', () => {
    it('missing: no token, or an empty one', async () => {
      expect(await reasonFor(hs, undefined)).toBe('missing');
      expect(await reasonFor(hs, '')).toBe('missing');
    });

    it('malformed: not three base64url parts, bad JSON, a payload that is no object', async () => {
      const signedGarbage = await new CompactSign(new TextEncoder().encode('not json')).setProtectedHeader({ alg: 'HS256' }).sign(hmac(SECRET));
      const signedArray = await new CompactSign(new TextEncoder().encode('[1,2]')).setProtectedHeader({ alg: 'HS256' }).sign(hmac(SECRET));
      for (const token of ['abc', 'a.b', 'a.b.c.d', 'a b.c.d', `${b64('{')}.${b64(CLAIMS)}.sig`, '....', 'é.é.é', signedGarbage, signedArray]) {
        expect({ token, reason: await reasonFor(hs, token) }).toEqual({ token, reason: 'malformed' });
      }
      // Positive control: the same signing path with a JSON object payload verifies.
      expect((await hs.verify(rawHs256({ alg: 'HS256' }, JSON.stringify(CLAIMS)), { instance: 'default', now: NOW })).ok).toBe(true);
    });

    it('malformed: a header with a critical extension nobody understands, or not JSON', async () => {
      expect(await reasonFor(hs, rawHs256({ alg: 'HS256', crit: ['x-unknown'], 'x-unknown': 1 }, JSON.stringify(CLAIMS)))).toBe('malformed');
      const input = `${b64('not json')}.${b64(CLAIMS)}`;
      expect(await reasonFor(hs, `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`)).toBe('malformed');
    });

    it('too_large: past 8 KiB, without being parsed', async () => {
      const token = await sign(hmac(SECRET), 'HS256', { ...CLAIMS, pad: 'x'.repeat(8_192) });
      expect(await reasonFor(hs, token)).toBe('too_large');
      expect(await reasonFor(hs, 'x'.repeat(1_000_000))).toBe('too_large');
      const small = createClientTokenVerifier({ hmacSecret: SECRET, maxTokenBytes: 100 });
      expect(await reasonFor(small, await sign(hmac(SECRET), 'HS256'))).toBe('too_large');
    });

    it('wrong_algorithm: alg none, unsigned', async () => {
      const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(CLAIMS)}.`;
      for (const verifier of [hs, rs, both]) expect(await reasonFor(verifier, none)).toBe('wrong_algorithm');
      expect(await reasonFor(hs, `${b64({ alg: 'NONE' })}.${b64(CLAIMS)}.`)).toBe('wrong_algorithm');
      // A header without alg names no algorithm at all: malformed.
      expect(await reasonFor(hs, `${b64({ typ: 'JWT' })}.${b64(CLAIMS)}.AAAA`)).toBe('malformed');
    });

    it('wrong_algorithm: an HS256 token against a public-key-only config', async () => {
      expect(await reasonFor(rs, await sign(hmac(SECRET), 'HS256'))).toBe('wrong_algorithm');
    });

    it('wrong_algorithm: the RSA public key used as an HMAC secret (the classic alg confusion)', async () => {
      const forged = await sign(hmac(pem(rsa.publicKey)), 'HS256');
      expect(await reasonFor(rs, forged)).toBe('wrong_algorithm');
      // Where HS256 is allowed, it is checked with the configured secret only, never the key.
      expect(await reasonFor(both, forged)).toBe('bad_signature');
    });

    it('wrong_algorithm: a public-key algorithm other than the key type gives', async () => {
      expect(await reasonFor(rs, await sign(ec.privateKey, 'ES256'))).toBe('wrong_algorithm');
      expect(await reasonFor(es, await sign(rsa.privateKey, 'RS256'))).toBe('wrong_algorithm');
      expect(await reasonFor(rs, await sign(rsa.privateKey, 'PS256'))).toBe('wrong_algorithm');
      expect(await reasonFor(rs, await sign(rsa.privateKey, 'RS512'))).toBe('wrong_algorithm');
      expect(await reasonFor(hs, await sign(hmac(SECRET), 'HS512'))).toBe('wrong_algorithm');
      expect(await reasonFor(eddsa, await sign(rsa.privateKey, 'RS256'))).toBe('wrong_algorithm');
    });

    it('wrong_algorithm: every token when no key is configured (mode off)', async () => {
      const off = createClientTokenVerifier();
      expect(off).toMatchObject({ mode: 'off', required: false, algorithms: [] });
      expect(await reasonFor(off, await sign(hmac(SECRET), 'HS256'))).toBe('wrong_algorithm');
    });

    it('bad_signature: another secret, another key of the same type, a tampered payload or signature', async () => {
      expect(await reasonFor(hs, await sign(hmac(OTHER_SECRET), 'HS256'))).toBe('bad_signature');
      expect(await reasonFor(rs, await sign(rsaOther.privateKey, 'RS256'))).toBe('bad_signature');
      const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      expect(await reasonFor(es, await sign(otherEc.privateKey, 'ES256'))).toBe('bad_signature');
      const otherEd = generateKeyPairSync('ed25519');
      expect(await reasonFor(eddsa, await sign(otherEd.privateKey, 'EdDSA'))).toBe('bad_signature');

      for (const [verifier, token] of [
        [hs, await sign(hmac(SECRET), 'HS256')],
        [rs, await sign(rsa.privateKey, 'RS256')],
        [eddsa, await sign(ed.privateKey, 'EdDSA')],
      ] as const) {
        const [h, , s] = token.split('.');
        const widened = `${h}.${b64({ ...CLAIMS, phids: ['*'] })}.${s}`;
        expect(await reasonFor(verifier, widened)).toBe('bad_signature');
        const sig = Buffer.from(s, 'base64url');
        sig[0] ^= 1;
        expect(await reasonFor(verifier, `${token.split('.').slice(0, 2).join('.')}.${sig.toString('base64url')}`)).toBe('bad_signature');
        // Positive control: the untouched token verifies.
        expect((await verifier.verify(token, { instance: 'default', now: NOW })).ok).toBe(true);
      }
    });

    it('expired: exp at or before now', async () => {
      for (const exp of [NOW_S - 1, NOW_S]) expect(await reasonFor(hs, await sign(hmac(SECRET), 'HS256', { ...CLAIMS, exp }))).toBe('expired');
      // Positive control: one second later it is still valid.
      expect((await hs.verify(await sign(hmac(SECRET), 'HS256', { ...CLAIMS, exp: NOW_S + 1 }), { instance: 'default', now: NOW })).ok).toBe(true);
    });

    it('not_yet_valid: nbf in the future', async () => {
      expect(await reasonFor(hs, await sign(hmac(SECRET), 'HS256', { ...CLAIMS, nbf: NOW_S + 60 }))).toBe('not_yet_valid');
      expect((await hs.verify(await sign(hmac(SECRET), 'HS256', { ...CLAIMS, nbf: NOW_S - 60 }), { instance: 'default', now: NOW })).ok).toBe(true);
    });

    it('wrong_issuer and wrong_audience when configured', async () => {
      const strict = createClientTokenVerifier({ hmacSecret: SECRET, issuer: 'phorge', audience: 'tidings' });
      expect(await reasonFor(strict, await sign(hmac(SECRET), 'HS256', { ...CLAIMS, iss: 'evil', aud: 'tidings' }))).toBe('wrong_issuer');
      expect(await reasonFor(strict, await sign(hmac(SECRET), 'HS256', { ...CLAIMS, aud: 'tidings' }))).toBe('wrong_issuer');
      expect(await reasonFor(strict, await sign(hmac(SECRET), 'HS256', { ...CLAIMS, iss: 'phorge', aud: 'other' }))).toBe('wrong_audience');
      expect(await reasonFor(strict, await sign(hmac(SECRET), 'HS256', { ...CLAIMS, iss: 'phorge' }))).toBe('wrong_audience');
    });

    it('wrong_instance: an instance claim that is not the connection instance', async () => {
      const token = await sign(hmac(SECRET), 'HS256', { ...CLAIMS, instance: 'acme' });
      expect(await reasonFor(hs, token, 'other')).toBe('wrong_instance');
      expect(await reasonFor(hs, token, 'default')).toBe('wrong_instance');
      expect((await hs.verify(token, { instance: 'acme', now: NOW })).ok).toBe(true);
    });

    it.each([
      ['no exp', { phids: ['PHID-USER-a'] }, /"exp" claim is missing/],
      ['exp not a number', { phids: ['PHID-USER-a'], exp: 'tomorrow' }, /"exp"/],
      ['no phids', { exp: NOW_S + 60 }, /"phids"/],
      ['phids not a list', { exp: NOW_S + 60, phids: 'PHID-USER-a' }, /"phids"/],
      ['a phid that is not a string', { exp: NOW_S + 60, phids: [{}] }, /"phids"\[0\]/],
      ['a star inside a phid', { exp: NOW_S + 60, phids: ['PHID-*-x'] }, /"phids"\[0\]/],
      ['sub not a string', { ...CLAIMS, sub: 42 }, /"sub"/],
      ['instance not a string', { ...CLAIMS, instance: ['acme'] }, /"instance"/],
      ['iat not a number', { ...CLAIMS, iat: 'now' }, /"iat"/],
    ])('invalid_claims: %s', async (_what, claims, message) => {
      const result = await refusal(hs, await sign(hmac(SECRET), 'HS256', claims as JWTPayload));
      expect(result.reason).toBe('invalid_claims');
      expect(result.message).toMatch(message);
    });
  });

  it('invalid_claims: more phids than the limit (checked below the size bound)', async () => {
    const roomy = createClientTokenVerifier({ hmacSecret: SECRET, maxTokenBytes: 65_536 });
    const phids = (n: number) => Array.from({ length: n }, (_, i) => `P${i}`);
    expect(await reasonFor(roomy, await sign(hmac(SECRET), 'HS256', { exp: NOW_S + 60, phids: phids(1_001) }))).toBe('invalid_claims');
    expect((await roomy.verify(await sign(hmac(SECRET), 'HS256', { exp: NOW_S + 60, phids: phids(1_000) }), { instance: 'x', now: NOW })).ok).toBe(true);
    const few = createClientTokenVerifier({ hmacSecret: SECRET, maxPhids: 2 });
    expect(await reasonFor(few, await sign(hmac(SECRET), 'HS256', { exp: NOW_S + 60, phids: phids(3) }))).toBe('invalid_claims');
  });

  describe('configuration', () => {
    it.each([
      ['required mode without a secret or key', { mode: 'required' as const }, /mode "required" needs hmacSecret or publicKeyFile/],
      ['a short secret', { hmacSecret: 'x'.repeat(31) }, /hmacSecret: must be at least 32/],
      ['a PEM that is no key', { publicKeyPem: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }, /publicKeyFile: not a PEM public key/],
      ['a private key', { publicKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }, /holds a private key/],
      ['a small RSA key', { publicKeyPem: pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey) }, /at least 2048 bits/],
      ['an EC key on P-384', { publicKeyPem: pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey) }, /P-256.*secp384r1/],
      ['an Ed448 key', { publicKeyPem: pem(generateKeyPairSync('ed448').publicKey) }, /ed448 key cannot verify/],
      ['an unknown mode', { mode: 'optional' as never }, /mode: "optional"/],
    ])('refuses %s, naming the option', (_what, options, message) => {
      expect(() => createClientTokenVerifier(options)).toThrow(ClientTokenConfigError);
      expect(() => createClientTokenVerifier(options)).toThrow(message);
    });

    it('allows only the algorithms of the keys given', () => {
      expect(hs.algorithms).toEqual(['HS256']);
      expect(rs.algorithms).toEqual(['RS256']);
      expect(es.algorithms).toEqual(['ES256']);
      expect(eddsa.algorithms).toEqual(['EdDSA', 'Ed25519']);
      expect(both.algorithms).toEqual(['HS256', 'RS256']);
      expect(both).toMatchObject({ mode: 'required', required: true });
    });
  });
});
