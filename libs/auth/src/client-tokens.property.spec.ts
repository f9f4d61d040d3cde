/**
 * Fuzzed tokens: 10,000 generated inputs (random text, random base64url parts, JWTs with
 * arbitrary headers, algorithms and claims but no valid signature, real tokens with a
 * tampered payload, header or signature, and correctly signed ones with unusable claims).
 * For every one, against every verifier: verify() resolves (never throws), refuses with one
 * of the stable reasons, and its message does not repeat the token. A positive control
 * shows validly signed random claims still pass.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { CLIENT_TOKEN_REASONS, createClientTokenVerifier } from './client-tokens';
import { checkPhidEntries } from './grant';

const SECRET = 'property-test-secret-0123456789abcdef';
const NOW = Date.UTC(2030, 0, 1);
const NOW_S = NOW / 1_000;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;
const secretKey = new TextEncoder().encode(SECRET);

const verifiers = [
  createClientTokenVerifier({ mode: 'required', hmacSecret: SECRET, publicKeyPem: pem(rsa.publicKey) }),
  createClientTokenVerifier({ mode: 'required', publicKeyPem: pem(ec.publicKey), issuer: 'phorge', audience: 'tidings' }),
  createClientTokenVerifier({ mode: 'required', publicKeyPem: pem(ed.publicKey) }),
];

const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString('base64url');

const CLAIMS = { phids: ['PHID-USER-alice', 'PHID-PROJ-*'], exp: NOW_S + 3_600, iss: 'phorge', aud: 'tidings', instance: 'default' };
const signers: [KeyObject | Uint8Array, string][] = [
  [secretKey, 'HS256'],
  [rsa.privateKey, 'RS256'],
  [ec.privateKey, 'ES256'],
  [ed.privateKey, 'EdDSA'],
];

let validTokens: string[] = [];
beforeAll(async () => {
  validTokens = await Promise.all(signers.map(([key, alg]) => new SignJWT(CLAIMS).setProtectedHeader({ alg }).sign(key)));
  // Positive control of the fixtures: each verifies with the verifier holding its key.
  const ok = await Promise.all(
    validTokens.map((token, i) => verifiers[Math.max(0, i - 1)].verify(token, { instance: 'default', now: NOW })),
  );
  expect(ok.map((r) => r.ok)).toEqual([true, true, true, true]);
});

const base64urlPart = fc.uint8Array({ maxLength: 400 }).map(b64);
const algorithm = fc.constantFrom('none', 'None', 'NONE', '', 'HS256', 'HS384', 'HS512', 'RS256', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519', 'A128KW', 'dir');
const header = fc.record(
  {
    alg: fc.oneof(algorithm, fc.jsonValue()),
    typ: fc.constantFrom('JWT', 'jwt', 'at+jwt'),
    kid: fc.string(),
    crit: fc.array(fc.string(), { maxLength: 2 }),
    b64: fc.boolean(),
  },
  { requiredKeys: [] },
);
const claims = fc.record(
  {
    exp: fc.oneof(fc.integer({ min: NOW_S - 10_000, max: NOW_S + 10_000 }), fc.jsonValue()),
    nbf: fc.oneof(fc.integer({ min: NOW_S - 10_000, max: NOW_S + 10_000 }), fc.jsonValue()),
    iat: fc.oneof(fc.integer(), fc.jsonValue()),
    iss: fc.oneof(fc.constant('phorge'), fc.jsonValue()),
    aud: fc.oneof(fc.constant('tidings'), fc.jsonValue()),
    sub: fc.jsonValue(),
    instance: fc.oneof(fc.constant('default'), fc.jsonValue()),
    phids: fc.oneof(fc.array(fc.string()), fc.jsonValue(), fc.constant(['*'])),
  },
  { requiredKeys: [] },
);

/** Inputs that must all be refused. */
const badToken: fc.Arbitrary<string> = fc.oneof(
  // Anything at all, from any alphabet.
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: fc.constantFrom('.', '-', '_', 'a', 'Z', '0', '=', '+', '/', ' '), maxLength: 200 }),
  // Three (or two, or four) base64url parts of random bytes.
  fc.array(base64urlPart, { minLength: 2, maxLength: 4 }).map((parts) => parts.join('.')),
  // A well-formed JWT with any header and claims, and a random signature or none.
  fc
    .tuple(header, claims, fc.oneof(fc.constant(''), fc.uint8Array({ minLength: 1, maxLength: 512 }).map(b64)))
    .map(([h, c, sig]) => `${b64(JSON.stringify(h))}.${b64(JSON.stringify(c))}.${sig}`),
  // A real token whose payload was changed (phids widened to everything), signature kept.
  fc
    .tuple(fc.integer({ min: 0, max: signers.length - 1 }), claims)
    .map(([i, c]) => {
      const [h, , s] = validTokens[i].split('.');
      return `${h}.${b64(JSON.stringify({ ...CLAIMS, ...c, phids: ['*'] }))}.${s}`;
    }),
  // A real token whose header now names another algorithm.
  fc
    .tuple(fc.integer({ min: 0, max: signers.length - 1 }), algorithm)
    .filter(([i, alg]) => alg !== signers[i][1])
    .map(([i, alg]) => {
      const [, p, s] = validTokens[i].split('.');
      return `${b64(JSON.stringify({ alg }))}.${p}.${s}`;
    }),
  // A real token with a random signature of about the right size.
  fc.tuple(fc.integer({ min: 0, max: signers.length - 1 }), fc.uint8Array({ minLength: 32, maxLength: 256 })).map(([i, sig]) => {
    const [h, p] = validTokens[i].split('.');
    return `${h}.${p}.${b64(sig)}`;
  }),
  // Correctly signed (HS256, with the secret) but with random claims whose phids are unusable:
  // the checks after the signature get junk too.
  fc
    .tuple(claims, fc.jsonValue().filter((v) => checkPhidEntries(v) !== undefined))
    .map(([c, phids]) => {
      const input = `${b64(JSON.stringify({ alg: 'HS256' }))}.${b64(JSON.stringify({ ...c, phids }))}`;
      return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    }),
  // Oversized.
  fc.integer({ min: 8_193, max: 20_000 }).map((n) => 'a'.repeat(n)),
);

describe('client token verifier, fuzzed', () => {
  jest.setTimeout(120_000);

  it('never throws on and never accepts 10,000 malformed, forged or random tokens', async () => {
    const reasons = new Map<string, number>();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(badToken, async (token) => {
        runs++;
        for (const verifier of verifiers) {
          const result = await verifier.verify(token, { instance: 'default', now: NOW });
          if (result.ok) return false;
          if (!CLIENT_TOKEN_REASONS.includes(result.reason)) return false;
          if (token.length >= 8 && result.message.includes(token)) return false;
          reasons.set(result.reason, (reasons.get(result.reason) ?? 0) + 1);
        }
        return true;
      }),
      { numRuns: 10_000, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
    expect(runs).toBe(10_000);
    if (process.env.FC_REASONS) process.stdout.write(`${JSON.stringify(Object.fromEntries(reasons))}\n`);
    // The generators reach the interesting refusals, not only `malformed`.
    for (const reason of ['malformed', 'too_large', 'wrong_algorithm', 'bad_signature', 'invalid_claims']) expect(reasons.get(reason) ?? 0).toBeGreaterThan(50);
  });

  it('positive control: validly signed random grants are accepted, and allow exactly their PHIDs', async () => {
    const phid = fc.stringMatching(/^PHID-[A-Z]{4}-[a-z0-9]{1,20}$/);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: signers.length - 1 }), fc.uniqueArray(phid, { maxLength: 30 }), phid, async (i, phids, other) => {
        const [key, alg] = signers[i];
        const token = await new SignJWT({ ...CLAIMS, phids }).setProtectedHeader({ alg }).sign(key);
        const result = await verifiers[Math.max(0, i - 1)].verify(token, { instance: 'default', now: NOW });
        if (!result.ok) return false;
        return phids.every((p) => result.grant.allows(p)) && result.grant.allows(other) === phids.includes(other);
      }),
      { numRuns: 300 },
    );
  });
});
