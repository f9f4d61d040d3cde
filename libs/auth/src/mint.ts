/**
 * HS256 connection tokens, for `tidings token`, tests, and backends without a JWT library.
 * What it mints is what createClientTokenVerifier accepts with the same secret.
 */
import { SignJWT } from 'jose';
import { MIN_HMAC_SECRET_LENGTH } from '@tidings/protocol';
import { checkPhidEntries } from './grant';

export interface MintOptions {
  /** The HS256 secret (`auth.clientTokens.hmacSecret`), at least 32 characters. */
  secret: string;
  /** What the connection may subscribe to; an entry ending in `*` is a prefix. */
  phids: readonly string[];
  /** Lifetime in seconds: `exp` is now + ttl. */
  ttlSeconds: number;
  /** Binds the token to one instance. */
  instance?: string;
  sub?: string;
  issuer?: string;
  audience?: string;
  /** Issue time in ms since the epoch (default Date.now()). */
  now?: number;
}

export class MintError extends Error {
  override name = 'MintError';
}

export async function mintClientToken(options: MintOptions): Promise<string> {
  if (options.secret.length < MIN_HMAC_SECRET_LENGTH) throw new MintError(`the secret must be at least ${MIN_HMAC_SECRET_LENGTH} characters (256 bits for HS256)`);
  const problem = checkPhidEntries(options.phids);
  if (problem) throw new MintError(problem);
  if (!Number.isFinite(options.ttlSeconds) || options.ttlSeconds <= 0) throw new MintError('the lifetime must be a positive number of seconds');
  const iat = Math.floor((options.now ?? Date.now()) / 1_000);
  const jwt = new SignJWT({ phids: [...options.phids], ...(options.instance !== undefined ? { instance: options.instance } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.ceil(options.ttlSeconds));
  if (options.sub !== undefined) jwt.setSubject(options.sub);
  if (options.issuer) jwt.setIssuer(options.issuer);
  if (options.audience) jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** `90`, `45s`, `30m`, `1h`, `7d` -> seconds; undefined for anything else (or zero). */
export function parseTtl(text: string): number | undefined {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) return undefined;
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] || 's'];
  return seconds > 0 && Number.isSafeInteger(seconds) ? seconds : undefined;
}
