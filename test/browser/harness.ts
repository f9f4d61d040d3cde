/**
 * What the browser specs need around a page: the page's script bundled by esbuild for the
 * browser (so @tidings/client's ES module build, with `ws` left out through its `browser`
 * field), a tiny static HTTP server of our own on 127.0.0.1 that serves it, and Debian's
 * Chromium driven by playwright-core (never a browser Playwright downloads).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { build, type Metafile } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.TIDINGS_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless Chromium as this machine allows it: no sandbox as root, and none of the
 * background connections (component updates, sync, field trials) a closed network refuses.
 * playwright-core gives every launch a fresh temporary --user-data-dir of its own.
 */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface PageBundle {
  code: string;
  /** Every input file esbuild put in the bundle (paths relative to the repository root). */
  inputs: string[];
}

const root = resolve(__dirname, '../..');

/** Bundles a page script (TypeScript) for the browser, as an application bundler would. */
export async function bundleForBrowser(entry: string): Promise<PageBundle> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    write: false,
    metafile: true,
    absWorkingDir: root,
    // Not the workspace's tsconfig.json: its `paths` point @tidings/* at their sources, and
    // the page must get what an application gets, the package's own build.
    tsconfigRaw: {},
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0].text, inputs: Object.keys((result.metafile as Metafile).inputs) };
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface StaticServer {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** Requests served per path, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 port 0 with exact-path routes; anything else is 404. */
export async function startStaticServer(routes: Record<string, Route>): Promise<StaticServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://page').pathname;
    requests.push(path);
    const route = routes[path];
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    Promise.resolve(route(req, res)).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(err.message);
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}

/** A route that answers with fixed content. */
export function fixed(contentType: string, body: string): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body);
  };
}
