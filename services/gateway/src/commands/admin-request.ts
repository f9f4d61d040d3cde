/**
 * HTTP calls to a node's admin port for the CLI commands, with errors an operator can act
 * on: which URL, and whether it was unreachable, slow, or answered with an error.
 */
import http from 'node:http';
import https from 'node:https';

/** A failure the CLI reports on one line and exits non-zero for. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    message: string,
    /** 1: the server failed or was unreachable; 2: bad arguments. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export interface AdminResponse {
  status: number;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/**
 * Checks `--admin` and returns it as a URL (http or https). A path is a prefix kept before
 * every request's path, as Phorge uses an admin server's `path` (`http://host:22281/TOKEN`
 * posts to `/TOKEN/`); it may hold a token, so messages show the URL's origin only.
 */
export function parseAdminUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new CommandError(`--admin: "${raw}" is not a URL (expected e.g. http://127.0.0.1:22281)`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    // The origin only: a path may hold a token.
    throw new CommandError(`--admin: "${url.protocol}//${url.host}" must be an http:// or https:// URL`, 2);
  }
  return url;
}

/**
 * Checks `--token` (or TIDINGS_TOKEN): it travels as `Authorization: Bearer TOKEN`, so one run
 * of visible ASCII. The message never repeats it. Undefined and '' mean no token.
 */
export function parseToken(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^[\x21-\x7e]+$/.test(raw)) {
    throw new CommandError('--token (or TIDINGS_TOKEN): must be one run of visible ASCII characters, without spaces', 2);
  }
  return raw;
}

/** Whether a request carries a token: `--token`, or a path prefix in `--admin` (Phorge's form). */
export function hasCredentials(admin: URL, token: string | undefined): boolean {
  return token !== undefined || admin.pathname.replace(/\/+$/, '') !== '';
}

/** A request's URL fit for messages: a path prefix (which may be a token) shows as /REDACTED. */
export function shownUrl(admin: URL, path: string): string {
  const prefix = admin.pathname.replace(/\/+$/, '') === '' ? '' : '/REDACTED';
  return `${admin.origin}${prefix}/${path.replace(/^\/+/, '')}`;
}

/** The request path under the admin URL's prefix (Phorge: rtrim(prefix, '/') . '/' . ltrim(path, '/')). */
export function adminPath(admin: URL, path: string): string {
  return `${admin.pathname.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

export async function adminRequest(
  admin: URL,
  path: string,
  options: {
    method?: string;
    body?: string;
    instance?: string;
    timeoutMs: number;
    /** Sent as `Authorization: Bearer TOKEN`. */
    token?: string;
  },
): Promise<AdminResponse> {
  const url = new URL(admin);
  url.pathname = adminPath(admin, path);
  url.search = '';
  url.hash = '';
  if (options.instance !== undefined) url.searchParams.set('instance', options.instance);
  // node:http rather than fetch: fetch refuses "bad ports" (1, 6000, 6665, ...) an admin port may use.
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<AdminResponse>((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(options.body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(options.body) }),
          ...(options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` }),
        },
        timeout: options.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new CommandError(`${url.origin}: the answer broke off: ${err.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new CommandError(`${url.origin}: no answer within ${options.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof CommandError) return reject(err);
      const why =
        err.code === 'ECONNREFUSED'
          ? 'connection refused (is a Tidings or Aphlict admin server listening there?)'
          : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
            ? `unknown host "${url.hostname}"`
            : err.message;
      reject(new CommandError(`cannot reach ${url.origin}: ${why}`));
    });
    req.end(options.body);
  });
}

/**
 * The server's own words for an error answer: `{"error","message"}` or the body text, with
 * the token and the path prefix replaced by REDACTED wherever the answer repeats them (a
 * default 404 page names the path). For a 401, what to do about it.
 */
export function describeErrorAnswer(res: AdminResponse, admin: URL, token: string | undefined): string {
  const body = res.json as { error?: unknown; message?: unknown } | undefined;
  let said: string;
  if (body && typeof body === 'object' && typeof body.message === 'string') {
    said = `${res.status} ${typeof body.error === 'string' ? `${body.error}: ` : ''}${body.message}`;
  } else {
    const text = res.text.trim().slice(0, 200);
    said = `${res.status}${text ? ` ${text}` : ''}`;
  }
  // The whole prefix, then each long segment of it (short ones like `ws` are no secret and too common to replace).
  const prefix = admin.pathname.replace(/\/+$/, '');
  const secrets: [string | undefined, string][] = [
    [token, 'REDACTED'],
    [prefix, '/REDACTED'],
    ...prefix.split('/').filter((segment) => segment.length >= 8).map((segment): [string, string] => [segment, 'REDACTED']),
  ];
  for (const [secret, shown] of secrets) if (secret) said = said.split(secret).join(shown);
  if (res.status !== 401) return said;
  const advice = hasCredentials(admin, token)
    ? 'the token given was refused'
    : 'give a token with --token or TIDINGS_TOKEN, or put it first in the --admin path';
  return `${said} (${advice})`;
}

/** Parses a positive integer option. */
export function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new CommandError(`${name}: "${raw}" is not a positive whole number`, 2);
  return n;
}
