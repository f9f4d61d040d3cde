/**
 * `tidings token`: prints an HS256 connection token for the client port, signed with the
 * secret of `auth.clientTokens.hmacSecret` read from a file (never from the command line,
 * where other users could read it in the process list). For tests, and for backends
 * without a JWT library.
 */
import { readFileSync } from 'node:fs';
import { MintError, mintClientToken, parseTtl } from '@tidings/auth';
import { CommandError } from './admin-request';

export interface TokenArgs {
  /** A file holding the HS256 secret; blanks around it (the final newline) are ignored. */
  secretFile: string;
  /** Comma-separated PHIDs; an entry ending in `*` is a prefix. */
  phids: string;
  /** Lifetime: `90`, `45s`, `30m`, `1h`, `7d`. */
  ttl: string;
  instance?: string;
  sub?: string;
  issuer?: string;
  audience?: string;
}

function readSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CommandError(`--secret-file: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
  }
  const secret = text.trim();
  if (secret === '') throw new CommandError(`--secret-file: "${file}" is empty`, 2);
  return secret;
}

export async function tokenCommand(args: TokenArgs, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const ttlSeconds = parseTtl(args.ttl);
  if (ttlSeconds === undefined) throw new CommandError(`--ttl: "${args.ttl}" is not a lifetime (e.g. 90, 45s, 30m, 1h, 7d)`, 2);
  const phids = args.phids
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (phids.length === 0) throw new CommandError('--phids: give at least one PHID or prefix (comma-separated)', 2);
  const secret = readSecret(args.secretFile);
  let token: string;
  try {
    token = await mintClientToken({ secret, phids, ttlSeconds, instance: args.instance, sub: args.sub, issuer: args.issuer, audience: args.audience });
  } catch (err) {
    if (err instanceof MintError) throw new CommandError(`${/secret/.test(err.message) ? '--secret-file' : '--phids'}: ${err.message}`, 2);
    throw err;
  }
  out.write(`${token}\n`);
}
