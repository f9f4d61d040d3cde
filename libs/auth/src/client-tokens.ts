/**
 * Signed connection tokens of the client port (`auth.clientTokens`): a JWT whose `phids`
 * claim lists what the connection may subscribe to, verified with jose once per connection
 * (at the WebSocket upgrade or the Socket.IO handshake).
 *
 * Which algorithms are accepted follows from the keys configured, never from the token:
 * HS256 with `hmacSecret`, and with a public key the one algorithm of its type (RSA: RS256,
 * P-256: ES256, Ed25519: EdDSA). `none` and everything else are refused, and a token whose
 * header names an algorithm of the other key is refused before any key is used.
 *
 * verify() never throws and never echoes the token: a refusal is one of a few stable
 * reasons (counter labels) with a message for the log.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { MIN_HMAC_SECRET_LENGTH, type ClientTokenMode } from '@tidings/protocol';
import { checkPhidEntries, createGrant, DEFAULT_PHID_ENTRY_LIMITS, type Grant } from './grant';

export type { ClientTokenMode };

/** Why a token was refused; stable, for counters and logs. */
export type ClientTokenReason =
  | 'missing'
  | 'malformed'
  | 'too_large'
  | 'wrong_algorithm'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'wrong_instance'
  | 'invalid_claims';

export const CLIENT_TOKEN_REASONS: readonly ClientTokenReason[] = [
  'missing',
  'malformed',
  'too_large',
  'wrong_algorithm',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'wrong_issuer',
  'wrong_audience',
  'wrong_instance',
  'invalid_claims',
];

export interface ClientTokenVerifierOptions {
  /** `off` (default): the gateway does not ask for tokens; `required`: every connection needs one. */
  mode?: ClientTokenMode;
  /** HS256 secret, at least 32 characters; '' or absent: no HS256. */
  hmacSecret?: string;
  /**
   * PEM text of the public key (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`, or an X.509
   * certificate): RSA (2048 bits or more) for RS256, P-256 for ES256, Ed25519 for EdDSA.
   * The gateway reads `publicKeyFile` and passes its text, so this lib does no I/O.
   */
  publicKeyPem?: string;
  /** Required `iss`; '' or absent: not checked. */
  issuer?: string;
  /** Required `aud` (the token's `aud` may be a list holding it); '' or absent: not checked. */
  audience?: string;
  /** Longest token accepted, in bytes (default 8192); longer ones are `too_large` without being parsed. */
  maxTokenBytes?: number;
  /** Most `phids` entries (default 1000). */
  maxPhids?: number;
  /** Longest `phids` entry in characters (default 256). */
  maxPhidLength?: number;
  /** Seconds of clock skew allowed on `exp` and `nbf` (default 0). */
  clockToleranceSeconds?: number;
}

export interface VerifyContext {
  /** The connection's instance (from its path); a token's `instance` claim must equal it. */
  instance: string;
  /** The time to verify at, in ms since the epoch (default Date.now()). */
  now?: number;
}

export type ClientTokenResult = { ok: true; grant: Grant } | { ok: false; reason: ClientTokenReason; message: string };

export interface ClientTokenVerifier {
  readonly mode: ClientTokenMode;
  /** True in mode `required`. */
  readonly required: boolean;
  /** The algorithms a token may be signed with (empty without keys: every token is `wrong_algorithm`). */
  readonly algorithms: readonly string[];
  verify(token: string | undefined, context: VerifyContext): Promise<ClientTokenResult>;
}

/** Options that cannot work together, or a key that cannot be used; the message names the option. */
export class ClientTokenConfigError extends Error {
  override name = 'ClientTokenConfigError';
}

export const DEFAULT_MAX_TOKEN_BYTES = 8_192;

/** A JWS in compact form: three base64url parts (the last empty for `alg: none`, refused later by name). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const MESSAGES: Record<Exclude<ClientTokenReason, 'invalid_claims'>, string> = {
  missing: 'no token was given',
  malformed: 'the token is not a well-formed JWT',
  too_large: 'the token is too large',
  wrong_algorithm: 'the token is signed with an algorithm this server does not accept',
  bad_signature: 'the token signature does not verify',
  expired: 'the token has expired',
  not_yet_valid: 'the token is not valid yet (nbf)',
  wrong_issuer: 'the token was issued by another issuer (iss)',
  wrong_audience: 'the token is for another audience (aud)',
  wrong_instance: 'the token is for another instance',
};

function refuse(reason: ClientTokenReason, message = MESSAGES[reason as keyof typeof MESSAGES]): ClientTokenResult {
  return { ok: false, reason, message };
}

/** The algorithms a public key can verify, or a ClientTokenConfigError saying why it cannot serve. */
function algorithmsOf(key: KeyObject): string[] {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048) throw new ClientTokenConfigError('publicKeyFile: an RSA key must have at least 2048 bits');
      return ['RS256'];
    case 'ec':
      if (details.namedCurve !== 'prime256v1') {
        throw new ClientTokenConfigError(`publicKeyFile: an EC key must be on P-256 for ES256 (this one is on ${details.namedCurve ?? 'an unknown curve'})`);
      }
      return ['ES256'];
    case 'ed25519':
      // RFC 8037 names it EdDSA; RFC 9864 (and jose) also Ed25519: the same signature.
      return ['EdDSA', 'Ed25519'];
    default:
      throw new ClientTokenConfigError(`publicKeyFile: a ${key.asymmetricKeyType ?? 'symmetric'} key cannot verify tokens (use RSA, P-256 or Ed25519)`);
  }
}

function readPublicKey(pem: string): KeyObject {
  // A private key would work (its public half is derived), but it has no business on a gateway.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ClientTokenConfigError('publicKeyFile: holds a private key; give the gateway only the public key');
  }
  try {
    return createPublicKey(pem);
  } catch (err) {
    throw new ClientTokenConfigError(`publicKeyFile: not a PEM public key or certificate (${(err as Error).message})`);
  }
}

/** The reason for a jose error; anything unforeseen is `malformed`, so verify() never throws. */
function reasonOf(err: unknown): ClientTokenResult {
  if (err instanceof errors.JWTExpired) return refuse('expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return refuse('wrong_issuer');
    if (err.claim === 'aud') return refuse('wrong_audience');
    if (err.claim === 'nbf' && err.reason === 'check_failed') return refuse('not_yet_valid');
    return refuse('invalid_claims', `the "${err.claim}" claim is ${err.reason === 'missing' ? 'missing' : 'invalid'}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return refuse('wrong_algorithm');
  if (err instanceof errors.JWSSignatureVerificationFailed) return refuse('bad_signature');
  return refuse('malformed');
}

/** Builds a verifier from `auth.clientTokens` (with the key file's text). Throws ClientTokenConfigError. */
export function createClientTokenVerifier(options: ClientTokenVerifierOptions = {}): ClientTokenVerifier {
  const mode = options.mode ?? 'off';
  const hmacSecret = options.hmacSecret ?? '';
  const publicKeyPem = options.publicKeyPem ?? '';
  if (mode !== 'off' && mode !== 'required') throw new ClientTokenConfigError(`mode: "${String(mode)}" is neither "off" nor "required"`);
  if (mode === 'required' && !hmacSecret && !publicKeyPem) {
    throw new ClientTokenConfigError('mode "required" needs hmacSecret or publicKeyFile');
  }
  if (hmacSecret && hmacSecret.length < MIN_HMAC_SECRET_LENGTH) {
    throw new ClientTokenConfigError(`hmacSecret: must be at least ${MIN_HMAC_SECRET_LENGTH} characters (256 bits for HS256)`);
  }
  const secretKey = hmacSecret ? new TextEncoder().encode(hmacSecret) : undefined;
  const publicKey = publicKeyPem ? readPublicKey(publicKeyPem) : undefined;
  const publicAlgorithms = publicKey ? algorithmsOf(publicKey) : [];
  const algorithms = [...(secretKey ? ['HS256'] : []), ...publicAlgorithms];
  const maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const limits = {
    maxPhids: options.maxPhids ?? DEFAULT_PHID_ENTRY_LIMITS.maxPhids,
    maxPhidLength: options.maxPhidLength ?? DEFAULT_PHID_ENTRY_LIMITS.maxPhidLength,
  };
  // jose checks the header's alg against `algorithms` before it asks for a key, so the
  // secret is only ever used for HS256 and the public key only for its own algorithm.
  const keyFor: JWTVerifyGetKey = (header) => (header.alg === 'HS256' ? secretKey! : publicKey!);
  const verifyOptions = {
    algorithms,
    requiredClaims: ['exp'],
    clockTolerance: options.clockToleranceSeconds ?? 0,
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
  };

  async function verify(token: string | undefined, context: VerifyContext): Promise<ClientTokenResult> {
    if (token === undefined || token === '') return refuse('missing');
    if (typeof token !== 'string') return refuse('malformed');
    // Characters first (cheap), then bytes: a base64url token has one byte per character.
    if (token.length > maxTokenBytes || Buffer.byteLength(token) > maxTokenBytes) return refuse('too_large');
    if (!COMPACT_JWS.test(token)) return refuse('malformed');
    if (algorithms.length === 0) return refuse('wrong_algorithm');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keyFor, { ...verifyOptions, currentDate: new Date(context.now ?? Date.now()) }));
    } catch (err) {
      return reasonOf(err);
    }
    const { sub, exp } = payload;
    const instance: unknown = payload.instance;
    if (sub !== undefined && typeof sub !== 'string') return refuse('invalid_claims', 'the "sub" claim must be a string');
    if (instance !== undefined && typeof instance !== 'string') return refuse('invalid_claims', 'the "instance" claim must be a string');
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return refuse('invalid_claims', 'the "exp" claim must be a number');
    const phidProblem = checkPhidEntries(payload.phids, limits);
    if (phidProblem) return refuse('invalid_claims', phidProblem);
    if (instance !== undefined && instance !== context.instance) return refuse('wrong_instance');
    return { ok: true, grant: createGrant({ sub, instance, expiresAt: exp * 1000, phids: payload.phids as string[] }) };
  }

  return { mode, required: mode === 'required', algorithms, verify };
}
