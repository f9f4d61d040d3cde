/**
 * The console's static files (index.html, the bundled script and styles), served at
 * /console/ on the admin port in front of the admin gate: they hold no secret and no
 * figure, and the page asks for its token before it calls the API, which the gate guards.
 * The files are read once at start (tens of KiB) and answered with an ETag.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';

export const CONSOLE_PREFIX = '/console/';
const API_PREFIX = '/console/api/';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * Scripts and styles from this origin only; the page may open WebSockets to the client
 * port (another port, so another origin) and nothing else.
 */
const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

interface PageFile {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * Where the built page is: `dist/public/console` beside the compiled gateway (the gateway's
 * build copies it there), else the console project's own build in the same checkout, when
 * the gateway runs from its sources (unit tests). Null when neither exists.
 */
export function findPageDir(): string | null {
  const candidates = [join(__dirname, '..', 'public', 'console'), join(__dirname, '..', '..', '..', 'console', 'dist')];
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? null;
}

export class ConsolePage {
  private readonly files = new Map<string, PageFile>();

  /**
   * `dir`: the built page; null serves a 404 that says the console was not built.
   * `authRequired`: the admin port has tokens; the page is told so (an attribute on its
   * body), so it asks for a token at once instead of making a request that is refused.
   */
  constructor(
    readonly dir: string | null,
    options: { authRequired: boolean } = { authRequired: false },
  ) {
    if (!dir) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!statSync(path).isFile() || !TYPES[extname(name)]) continue;
      let body = readFileSync(path);
      if (name === 'index.html' && options.authRequired) body = Buffer.from(body.toString('utf8').replace('<body>', '<body data-admin-auth="required">'));
      this.files.set(name, { body, type: TYPES[extname(name)], etag: `"${createHash('sha1').update(body).digest('base64url')}"` });
    }
  }

  get isBuilt(): boolean {
    return this.files.has('index.html');
  }

  /**
   * Answers GET and HEAD of /console and the page's files; false for anything else (the
   * API under /console/api/ included), which goes on to the admin gate.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === '/console') {
      res.writeHead(301, { Location: CONSOLE_PREFIX, 'Content-Length': 0 });
      res.end();
      return true;
    }
    if (!path.startsWith(CONSOLE_PREFIX) || path.startsWith(API_PREFIX)) return false;
    const name = path === CONSOLE_PREFIX ? 'index.html' : path.slice(CONSOLE_PREFIX.length);
    const file = this.files.get(name);
    if (!file) {
      const body = JSON.stringify(
        this.isBuilt
          ? { error: 'not_found', message: 'no such console file' }
          : { error: 'console_not_built', message: 'this gateway was built without its console (npm run build builds it)' },
      );
      res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    }
    const headers = { ...SECURITY_HEADERS, 'Cache-Control': 'no-cache', ETag: file.etag };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, 'Content-Type': file.type, 'Content-Length': file.body.length });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}
