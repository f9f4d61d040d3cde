/**
 * @tidings/client in a real browser: its ES module build bundled by esbuild into a test page
 * that a tiny static server of ours serves, run in Debian's Chromium (playwright-core),
 * against real gateway processes. Both transports: connect, subscribe and receive; kill -9
 * of the node the page is on while publishing (two nodes on one Redis), the page reconnects
 * to the other with nothing missed and nothing twice; short-lived connection tokens that the
 * page's getToken() fetches from the page's own server, refreshed as they expire.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mintClientToken } from '@tidings/auth';
import { notification, post, sleep, spawnGateway, startRedis, type GatewayProcess, type RedisHandle } from '@tidings/testing';
import type { Browser, Page } from 'playwright-core';
import { deliveryFaults, publishSteadily, startBusNodes, uniquePrefix } from '../support/redis-cluster';
import { bundleForBrowser, fixed, launchChromium, startStaticServer, type PageBundle, type StaticServer } from './harness';
import type { PageClientOptions, PageState, TidingsPage } from './client-page';

const SECRET = 'the-browser-client-token-secret-32+';
const OTHER_SECRET = 'a-secret-the-gateways-do-not-know-32+';
const FAST_RECONNECT = { initialDelayMs: 200, maxDelayMs: 1_000 };

let browser: Browser;
let bundle: PageBundle;
let redis: RedisHandle;
let server: StaticServer;
/** What the page's server has minted, in order (its /token route). */
const minted: string[] = [];
let tokenPhids: string[] = [];
let tokenTtlSeconds = 30;

let nodes: GatewayProcess[] = [];
let page: Page | undefined;

beforeAll(async () => {
  bundle = await bundleForBrowser(join(__dirname, 'client-page.ts'));
  server = await startStaticServer({
    '/': fixed('text/html', '<!doctype html><meta charset="utf-8"><title>tidings client</title><script src="/client.js"></script>'),
    '/client.js': fixed('text/javascript', bundle.code),
    // The application's token endpoint: a fresh short-lived token for this page's user.
    '/token': async (_req, res) => {
      const token = await mintClientToken({ secret: SECRET, phids: tokenPhids, ttlSeconds: tokenTtlSeconds, sub: `page-${minted.length}` });
      minted.push(token);
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(token);
    },
    // A token signed with a secret the gateways do not know (the refusal control).
    '/foreign-token': async (_req, res) => {
      const token = await mintClientToken({ secret: OTHER_SECRET, phids: tokenPhids, ttlSeconds: 30 });
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(token);
    },
  });
  browser = await launchChromium();
  redis = await startRedis();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (redis?.owned) await redis.stop();
});

afterEach(async () => {
  if (page) {
    await page.evaluate(() => (globalThis as unknown as { tidingsPage: TidingsPage }).tidingsPage.close()).catch(() => undefined);
    await page.close();
    page = undefined;
  }
  await Promise.all(nodes.map((n) => n.kill()));
  nodes = [];
  minted.length = 0;
});

/** A new page with the client script loaded, and a client started on `urls`. */
async function openClientPage(urls: string[], options: PageClientOptions): Promise<Page> {
  page = await browser.newPage();
  page.on('pageerror', (err) => console.error('page error:', err.message));
  await page.goto(`${server.origin}/`);
  await page.evaluate(
    ([u, o]) => (globalThis as unknown as { tidingsPage: TidingsPage }).tidingsPage.start(u, o),
    [urls, options] as const,
  );
  return page;
}

const waitForOpen = (p: Page, timeoutMs = 10_000) =>
  p.evaluate((ms) => (globalThis as unknown as { tidingsPage: TidingsPage }).tidingsPage.waitForOpen(ms), timeoutMs);
const subscribe = (p: Page, phids: string[]) =>
  p.evaluate((list) => (globalThis as unknown as { tidingsPage: TidingsPage }).tidingsPage.subscribe(list), phids);
const pageState = (p: Page): Promise<PageState> => p.evaluate(() => (globalThis as unknown as { tidingsPage: TidingsPage }).tidingsPage.state());

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('the page bundle', () => {
  it('is the ES module build of the client, with socket.io-client for browsers and without ws', () => {
    expect(bundle.inputs).toContain('libs/client/dist/esm/tidings-client.js');
    expect(bundle.inputs.some((f) => f.startsWith('libs/client/dist/') && !f.startsWith('libs/client/dist/esm/'))).toBe(false);
    expect(bundle.inputs.some((f) => f.includes('node_modules/socket.io-client/'))).toBe(true);
    // The client's `import('ws')` was seen, and the client's `browser` field swapped it for
    // an empty module: none of ws's code is in the page.
    const wsInputs = bundle.inputs.filter((f) => /node_modules\/ws\//.test(f));
    expect(wsInputs.length).toBeGreaterThan(0);
    expect(wsInputs.filter((f) => !f.startsWith('(disabled):'))).toEqual([]);
    expect(bundle.inputs.filter((f) => /@tidings\/protocol|libs\/protocol\//.test(f))).toEqual([]);
  });

  it('has the size libs/client/README.md shows (tools/client-bundle-size.mjs --check)', () => {
    const run = spawnSync(process.execPath, [join(__dirname, '../../tools/client-bundle-size.mjs'), '--check'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('is up to date');
    expect(run.status).toBe(0);
  });
});

describe.each(['aphlict', 'socket.io'] as const)('@tidings/client in Chromium over %s', (transport) => {
  it('connects, subscribes and receives what is published to its PHIDs, and nothing else', async () => {
    nodes = [await spawnGateway()];
    const [node] = nodes;
    const PHID = `PHID-BROWSER-${transport}`;
    const p = await openClientPage([node.clientUrl], { transport, instance: 'acme' });
    await waitForOpen(p);
    await subscribe(p, [PHID]);

    const elsewhere = notification(['PHID-SOMEONE-ELSE']);
    const other = notification([PHID]);
    const mine = notification([PHID]);
    expect((await post(node.adminUrl, elsewhere, { instance: 'acme' })).status).toBe(200);
    // Same PHID, other instance: must not reach an `acme` page either.
    expect((await post(node.adminUrl, other, { instance: 'default' })).status).toBe(200);
    expect((await post(node.adminUrl, mine, { instance: 'acme' })).status).toBe(200);
    await until(async () => (await pageState(p)).keys.length > 0, 'the message in the page');
    await sleep(200);

    const state = await pageState(p);
    expect(state.keys).toEqual([String(mine.key)]);
    expect(state.nativeWebSocket).toBe(true);
    // The gateway offers positions; the page's client asked for them by default.
    expect(state.positions[0]).toEqual({ offset: expect.any(Number), epoch: expect.any(String) });
    expect(state.statuses.map((s) => s.state)).toEqual(['connecting', 'open']);
    expect(state.errors).toEqual([]);
  });

  it('reconnects to the other node after kill -9 of its node, while publishing: nothing missed, nothing twice', async () => {
    nodes = await startBusNodes(2, { redis: { url: redis.url, keyPrefix: uniquePrefix(`browser-failover-${transport}`) } });
    const [victim, survivor] = nodes;
    const PHID = `PHID-BROWSER-FAILOVER-${transport}`;
    const p = await openClientPage([victim.clientUrl, survivor.clientUrl], { transport, instance: 'acme', reconnect: FAST_RECONNECT });
    await waitForOpen(p);
    await subscribe(p, [PHID]);
    expect((await pageState(p)).url.startsWith(victim.clientUrl)).toBe(true);

    let alive = [...nodes];
    const publisher = publishSteadily({ nodes: () => alive, phids: [PHID], ratePerSec: 40, max: 100, maxMs: 4_000, instance: 'acme' });
    await sleep(1_000);
    await victim.kill();
    alive = [survivor];
    await publisher.done;
    const acked = publisher.acked;
    expect(acked.length).toBeGreaterThan(70);

    await until(async () => {
      const keys = (await pageState(p)).keys;
      return acked.every((k) => keys.includes(k));
    }, 'every acknowledged message in the page');
    await sleep(300);
    const state = await pageState(p);
    expect(deliveryFaults(state.keys, acked)).toEqual({ missing: [], duplicates: [] });
    expect(state.url.startsWith(survivor.clientUrl)).toBe(true);
    expect(state.stats).toMatchObject({ reconnects: 1, replays: 1 });
    // Lost an open connection: reconnect at once; shared history in Redis: a replay by
    // position from the survivor that provably holds everything the page missed.
    expect(state.statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ delayMs: 0 });
    expect(state.statuses.at(-1)).toEqual({ state: 'open', reconnected: true, recovered: true });
  });

  it('keeps receiving across token expiries: getToken() fetches a fresh token from the page server for every connection', async () => {
    nodes = [await spawnGateway({ config: { auth: { clientTokens: { mode: 'required', hmacSecret: SECRET } } } })];
    const [node] = nodes;
    const PHID = `PHID-BROWSER-TOKEN-${transport}`;
    tokenPhids = [PHID];
    // exp is whole seconds after iat: a 2 s token lives 1 to 2 s.
    tokenTtlSeconds = 2;
    const p = await openClientPage([node.clientUrl], { transport, tokenPath: '/token', reconnect: FAST_RECONNECT });
    await waitForOpen(p);
    await subscribe(p, [PHID]);

    const publisher = publishSteadily({ nodes: () => nodes, phids: [PHID], ratePerSec: 30, max: 150, maxMs: 5_000 });
    await publisher.done;
    const acked = publisher.acked;
    expect(acked.length).toBeGreaterThan(100);
    await until(async () => {
      const keys = (await pageState(p)).keys;
      return acked.every((k) => keys.includes(k));
    }, 'every acknowledged message in the page');
    await sleep(300);

    const state = await pageState(p);
    expect(deliveryFaults(state.keys, acked)).toEqual({ missing: [], duplicates: [] });
    // Every connection used a token the page fetched, each one new, each one minted by the
    // page's server; at least two connections ended because their token expired.
    expect(state.tokens.length).toBeGreaterThanOrEqual(3);
    expect(new Set(state.tokens).size).toBe(state.tokens.length);
    // (The page may be fetching the next one as its state is read.)
    expect(minted.slice(0, state.tokens.length)).toEqual(state.tokens);
    const expiries = node.logs.filter((r) => String(r.msg).startsWith('client token expired'));
    expect(expiries.length).toBeGreaterThanOrEqual(2);
    expect(state.stats.reconnects).toBeGreaterThanOrEqual(2);
    // Every reconnect replayed from the page's position and provably missed nothing.
    const reopened = state.statuses.filter((s) => s.state === 'open' && s.reconnected);
    expect(reopened.length).toBe(state.stats.reconnects);
    expect(reopened.every((s) => s.state === 'open' && s.recovered === true)).toBe(true);
    if (transport === 'aphlict') {
      // Close code 4001 reaches the page: the client says why it reconnects.
      expect(state.statuses.filter((s) => s.state === 'reconnecting' && s.auth === 'token_expired').length).toBeGreaterThanOrEqual(2);
    }
    expect(state.errors).toEqual([]);
    // No token ever appears in the URL the client reports.
    expect(state.url).not.toContain('token');
  });

  it('does not open with a token the gateway refuses (the control: tokens are really checked)', async () => {
    nodes = [await spawnGateway({ config: { auth: { clientTokens: { mode: 'required', hmacSecret: SECRET } } } })];
    const [node] = nodes;
    tokenPhids = ['PHID-BROWSER-REFUSED'];
    const p = await openClientPage([node.clientUrl], { transport, tokenPath: '/foreign-token', reconnect: FAST_RECONNECT });
    await expect(waitForOpen(p, 1_500)).rejects.toThrow();
    const state = await pageState(p);
    expect(state.isOpen).toBe(false);
    expect(state.tokens.length).toBeGreaterThanOrEqual(1);
    expect(state.statuses.some((s) => s.state === 'open')).toBe(false);
    expect(node.logs.some((r) => /connection refused/.test(String(r.msg)))).toBe(true);
    if (transport === 'socket.io') {
      expect(state.errors.some((e) => e.name === 'TidingsAuthError' && e.code === 'unauthorized')).toBe(true);
    }
  });
});
