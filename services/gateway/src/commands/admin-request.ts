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

/** Checks `--admin` and returns it as a URL (http or https, no path beyond /). */
export function parseAdminUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new CommandError(`--admin: "${raw}" is not a URL (expected e.g. http://127.0.0.1:22281)`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CommandError(`--admin: "${raw}" must be an http:// or https:// URL`, 2);
  }
  return url;
}

export async function adminRequest(
  admin: URL,
  path: string,
  options: { method?: string; body?: string; instance?: string; timeoutMs: number },
): Promise<AdminResponse> {
  const url = new URL(admin);
  url.pathname = path;
  url.search = '';
  if (options.instance !== undefined) url.searchParams.set('instance', options.instance);
  // node:http rather than fetch: fetch refuses "bad ports" (1, 6000, 6665, ...) an admin port may use.
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<AdminResponse>((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(options.body) },
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

/** The server's own words for an error answer: `{"error","message"}` or the body text. */
export function describeErrorAnswer(res: AdminResponse): string {
  const body = res.json as { error?: unknown; message?: unknown } | undefined;
  if (body && typeof body === 'object' && typeof body.message === 'string') {
    return `${res.status} ${typeof body.error === 'string' ? `${body.error}: ` : ''}${body.message}`;
  }
  const text = res.text.trim().slice(0, 200);
  return `${res.status}${text ? ` ${text}` : ''}`;
}

/** Parses a positive integer option. */
export function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new CommandError(`${name}: "${raw}" is not a positive whole number`, 2);
  return n;
}
