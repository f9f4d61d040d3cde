/**
 * The console in a real browser (Debian's Chromium through playwright-core) against a
 * cluster of three gateway processes on one Redis, with admin tokens and required client
 * tokens: sign in (a refused token first), the cluster's gateways and their connection
 * counts as each gateway's own /status/ gives them, a publish from the form seen in the
 * page's live tail (and by a socket on another gateway), a phone-width layout without
 * horizontal scrolling, and the publish button reached and pressed with the keyboard.
 *
 * Screenshots go to reports/console/; with UPDATE_DOCS_SCREENSHOT=1 the desktop one also
 * replaces docs/console.png, which the README shows.
 */
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { mintClientToken } from '@tidings/auth';
import { connectSocket, notification, post, spawnGateway, startRedisServer, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { eventually, horizontalOverflow, inPage, openBrowser, type Browser } from './browser';

const ADMIN_TOKEN = 'console-browser-admin-token-01';
const HMAC_SECRET = 'console-browser-hmac-secret-0123456789abcdef';
const PHID = 'PHID-USER-consoletail';
const root = resolve(__dirname, '../..');
const reports = join(root, 'reports', 'console');

let redis: RedisHandle;
const gateways: GatewayProcess[] = [];
const sockets: TestSocket[] = [];
const ioSockets: Socket[] = [];
let browser: Browser | undefined;

const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };

interface Status {
  fingerprint: string;
  'clients.node.active': number;
  socketio: { active: number };
}

async function statusOf(gw: GatewayProcess): Promise<Status> {
  const res = await fetch(`${gw.adminUrl}/status/`, { headers: auth });
  return (await res.json()) as Status;
}

const token = (phids: string[]) => mintClientToken({ secret: HMAC_SECRET, phids, ttlSeconds: 600 });

beforeAll(async () => {
  mkdirSync(reports, { recursive: true });
  redis = await startRedisServer();
  const config = {
    redis: { url: redis.url, keyPrefix: `console-${process.pid}:` },
    auth: { adminTokens: [ADMIN_TOKEN], clientTokens: { mode: 'required', hmacSecret: HMAC_SECRET } },
  };
  for (let i = 0; i < 3; i++) gateways.push(await spawnGateway({ config }));
  // Connections the console must count: two raw sockets on the second gateway (one
  // subscribed to the tail's PHID), one Socket.IO socket on the third.
  const [, second, third] = gateways;
  for (let i = 0; i < 2; i++) sockets.push(await connectSocket(`${second.clientUrl}/?token=${await token([PHID])}`));
  sockets[0].send('subscribe', [PHID]);
  await sockets[0].roundTrip();
  const sio = io(third.clientUrl.replace('ws:', 'http:'), { transports: ['websocket'], auth: { token: await token([PHID]) }, reconnection: false });
  ioSockets.push(sio);
  await new Promise<void>((ok, fail) => {
    sio.once('connect', () => ok());
    sio.once('connect_error', fail);
  });
  await sio.timeout(5_000).emitWithAck('subscribe', [PHID]);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const s of ioSockets) s.close();
  for (const s of sockets) s.ws.terminate();
  await Promise.all(gateways.map((g) => g.stop('SIGINT')));
  await redis?.stop();
});

describe('console on a three-gateway cluster (browser)', () => {
  jest.setTimeout(120_000);

  it('signs in, refusing a wrong token first', async () => {
    browser = await openBrowser();
    const { page } = browser;
    await page.goto(`${gateways[0].adminUrl}/console/`);
    // The gateway marked the page as needing a token: the form shows without a refused request.
    await page.getByLabel('Admin token').waitFor({ state: 'visible' });
    expect(await page.isVisible('#dashboard')).toBe(false);
    await page.getByLabel('Admin token').fill('not-the-admin-token-0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#login-error').filter({ hasText: 'refused' }).waitFor();
    expect(await page.isVisible('#dashboard')).toBe(false);
    // The refused token's 401 is the one failed request the browser reports; from here on, none.
    expect(browser.problems).toEqual(['console: Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
    browser.problems.length = 0;
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    // Kept for this tab only, and never put in a URL.
    expect(await inPage(page, "sessionStorage.getItem('tidings.console.adminToken')")).toBe(ADMIN_TOKEN);
    expect(page.url()).not.toContain(ADMIN_TOKEN);
  });

  it("lists every gateway with the fingerprint and connection counts of its own /status/", async () => {
    const { page } = browser!;
    const expected = new Map<string, { raw: number; socketio: number }>();
    for (const gw of gateways) {
      const status = await statusOf(gw);
      expected.set(status.fingerprint, { raw: status['clients.node.active'], socketio: status.socketio.active });
    }
    // Positive control: the gateways differ, so a page that showed one gateway's figures everywhere would fail.
    expect([...expected.values()].map((e) => e.raw + e.socketio)).toEqual([0, 2, 1]);
    expect(new Set(expected.keys())).toEqual(new Set(gateways.map((g) => g.fingerprint)));

    const shown = await eventually(
      async () => {
        const rows = await page.locator('#cluster-table tbody tr[data-fingerprint]').all();
        return Promise.all(
          rows.map(async (row) => ({ fingerprint: await row.getAttribute('data-fingerprint'), connections: await row.locator('[data-figure="connections"]').textContent() })),
        );
      },
      (rows) => rows.length === 3 && rows.every((r) => Number(r.connections) === (expected.get(r.fingerprint!)?.raw ?? -1) + (expected.get(r.fingerprint!)?.socketio ?? -1)),
      15_000,
      'three gateways with their connection counts',
    );
    // This gateway first, then the others.
    expect(shown[0].fingerprint).toBe(gateways[0].fingerprint);
    // Each card: the connections by transport as /status/ splits them.
    for (const [fingerprint, counts] of expected) {
      const text = await page.locator(`article[data-fingerprint="${fingerprint}"] dd[data-figure="connections"]`).textContent();
      expect(text).toBe(`${counts.raw + counts.socketio} (raw ${counts.raw}, socket.io ${counts.socketio})`);
    }
    const second = await page.locator(`article[data-fingerprint="${gateways[1].fingerprint}"]`).textContent();
    expect(second).toContain('ready');
    expect(await page.locator(`article[data-fingerprint="${gateways[1].fingerprint}"] dd[data-figure="bus"]`).textContent()).toMatch(/^connected/);
  });

  it('publishes from the form and shows the message in the live tail (and a socket on another gateway gets it)', async () => {
    const { page } = browser!;
    expect(await page.getByLabel('Client port URL').inputValue()).toBe(gateways[0].clientUrl);
    await page.locator('#tail-phids').fill(PHID);
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('#tail-status').filter({ hasText: 'Watching 1 PHID' }).waitFor({ timeout: 15_000 });
    await page.locator('#publish-phids').fill(PHID);
    await page.getByLabel('Type').fill('console-test');
    await page.getByRole('button', { name: 'Publish' }).click();
    const outcome = await page.locator('#publish-outcome').filter({ hasText: 'Accepted by' }).textContent();
    expect(outcome).toContain(`Accepted by ${gateways[0].fingerprint}`);
    const uniqueID = /uniqueID (\w{32})/.exec(outcome!)![1];
    const item = page.locator(`#tail-messages li[data-unique-id="${uniqueID}"]`);
    await item.waitFor({ timeout: 10_000 });
    expect(await item.locator('.tail-head').textContent()).toContain(`console-test key`);
    expect(JSON.parse((await item.locator('pre').textContent())!)).toMatchObject({ type: 'console-test', subscribers: [PHID], uniqueID });
    await sockets[0].waitFor((frames) => frames.some((f) => f.uniqueID === uniqueID), 5_000, 'the message on the second gateway');
    // The tail's connection was made with a token the console minted (client tokens are required here).
    const status = await statusOf(gateways[0]);
    expect(status['clients.node.active']).toBe(1);
  });

  it('tails over Socket.IO too', async () => {
    const { page } = browser!;
    // Start is for a stopped tail: stop the raw one first.
    expect(await page.getByRole('button', { name: 'Start' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.locator('#tail-status').filter({ hasText: 'Tail stopped.' }).waitFor();
    await page.getByLabel('Transport').selectOption('socket.io');
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('#tail-status').filter({ hasText: 'over Socket.IO' }).waitFor({ timeout: 15_000 });
    const message = notification([PHID], { type: 'socketio-tail' });
    expect((await post(gateways[2].adminUrl, message, { headers: auth })).status).toBe(200);
    await page.locator(`#tail-messages li[data-unique-id="${message.uniqueID as string}"]`).waitFor({ timeout: 10_000 });
    const status = (await (await fetch(`${gateways[0].adminUrl}/status/`, { headers: auth })).json()) as Status;
    expect([status['clients.node.active'], status.socketio.active]).toEqual([0, 1]);
  });

  it('shows the 15-minute chart and takes the screenshot the README shows', async () => {
    const { page } = browser!;
    // Traffic for the charts, bounded: 60 publishes over about 12 s, round robin.
    for (let i = 0; i < 60; i++) {
      const res = await post(gateways[i % 3].adminUrl, notification([PHID, `PHID-USER-other${i % 4}`]), { headers: auth });
      expect(res.status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
    }
    await eventually(
      async () => (await page.locator('#cluster-table tbody tr[data-fingerprint] td:nth-child(5)').allTextContents()).map(Number),
      (rates) => rates.length === 3 && rates.every((r) => r > 0),
      15_000,
      'publishes per second on every gateway',
    );
    expect(await page.locator('.card canvas').count()).toBeGreaterThanOrEqual(3);
    // Tall enough for the cluster, the forms and this gateway's card with its chart.
    await page.setViewportSize({ width: 1280, height: 1360 });
    await inPage(page, 'window.scrollTo(0, 0)');
    await page.waitForTimeout(300);
    const file = join(reports, 'console.png');
    await page.screenshot({ path: file });
    await page.setViewportSize({ width: 1280, height: 900 });
    expect(statSync(file).size).toBeGreaterThan(10_000);
    if (process.env.UPDATE_DOCS_SCREENSHOT === '1') copyFileSync(file, join(root, 'docs', 'console.png'));
    expect(browser!.problems).toEqual([]);
  });

  it('fits a phone-width screen without scrolling sideways', async () => {
    const { page } = browser!;
    await page.setViewportSize({ width: 360, height: 780 });
    await page.waitForTimeout(300);
    const phone = await horizontalOverflow(page);
    expect(phone.clientWidth).toBe(360);
    expect(phone.scrollWidth).toBeLessThanOrEqual(phone.clientWidth);
    await page.screenshot({ path: join(reports, 'console-phone.png'), fullPage: true });
    // Positive control: something wider than the screen is caught by the same measure.
    // Styled through the CSSOM: the page's CSP refuses inline style attributes.
    await inPage(page, "{ const wide = document.createElement('div'); wide.id = 'too-wide'; wide.style.width = '900px'; wide.style.height = '1px'; document.body.append(wide); }");
    expect((await horizontalOverflow(page)).scrollWidth).toBeGreaterThan(360);
    await inPage(page, "document.getElementById('too-wide').remove()");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('reaches the publish button with Tab alone and publishes with Enter', async () => {
    const { page } = browser!;
    await page.reload();
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    await inPage(page, "document.getElementById('publish-outcome').textContent = ''");
    const focusedId = () => inPage<string>(page, "document.activeElement ? document.activeElement.id : ''");
    const visited: string[] = [];
    for (let i = 0; i < 40 && visited[visited.length - 1] !== 'publish-phids'; i++) {
      await page.keyboard.press('Tab');
      visited.push(await focusedId());
    }
    expect(visited[visited.length - 1]).toBe('publish-phids');
    await page.keyboard.type(PHID);
    for (let i = 0; i < 5 && (await focusedId()) !== 'publish-button'; i++) await page.keyboard.press('Tab');
    expect(await focusedId()).toBe('publish-button');
    // The visible focus ring (keyboard users see where they are).
    expect(await inPage(page, 'getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');
    const before = (await statusOf(gateways[0]) as unknown as { 'messages.in': number })['messages.in'];
    await page.keyboard.press('Enter');
    await page.locator('#publish-outcome').filter({ hasText: 'Accepted by' }).waitFor();
    const after = (await statusOf(gateways[0]) as unknown as { 'messages.in': number })['messages.in'];
    expect(after).toBe(before + 1);
    // The order a keyboard user meets: the forms come before the gateways' cards.
    expect(visited.indexOf('publish-instance')).toBeGreaterThan(-1);
    expect(visited.indexOf('publish-instance')).toBeLessThan(visited.indexOf('publish-phids'));
  });
});
