/**
 * The console in a real browser on a relay-only pair of gateway processes (no Redis), whose
 * admin ports are open (no admin tokens) and whose client port requires tokens it cannot
 * sign (a public key only): the page opens without a sign-in, lists this gateway and its
 * relay peer as the relay's status knows it, says the tail needs a pasted token, and tails
 * with one a backend signed.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { notification, post } from '@tidings/testing';
import { startMesh, type Mesh } from '../cluster/relay-mesh';
import { eventually, openBrowser, type Browser } from './browser';

const PHID = 'PHID-USER-relaytail';
const keys = generateKeyPairSync('ed25519');
let mesh: Mesh;
let browser: Browser | undefined;

/** An EdDSA connection token, as a backend with its own JWT library would sign it. */
function backendToken(phids: string[]): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signed = `${part({ alg: 'EdDSA', typ: 'JWT' })}.${part({ phids, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${signed}.${sign(null, Buffer.from(signed), keys.privateKey).toString('base64url')}`;
}

interface PeerStatus {
  peer: string;
  state: string;
  fingerprint: string | null;
  sent: number;
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-console-'));
  const keyFile = join(dir, 'client-tokens.pem');
  writeFileSync(keyFile, keys.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  mesh = await startMesh(2, { config: { auth: { clientTokens: { mode: 'required', publicKeyFile: keyFile } } } });
  // One relayed message: the first node learns its peer's fingerprint from the receipt.
  expect((await post(mesh.nodes[0].adminUrl, notification(['PHID-USER-nobody']))).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all((mesh?.nodes ?? []).map((n) => n.stop('SIGINT')));
});

describe('console on a relay-only pair, client tokens it cannot mint (browser)', () => {
  jest.setTimeout(90_000);

  it('opens without signing in and lists this gateway and its relay peer as /status/ has them', async () => {
    const [first, second] = mesh.nodes;
    const peers = await eventually(
      async () => ((await (await fetch(`${first.adminUrl}/status/`)).json()) as { 'relay.peers': PeerStatus[] })['relay.peers'],
      (list) => list.some((p) => p.fingerprint === second.fingerprint && p.state === 'up' && p.sent > 0),
      10_000,
      "the peer's fingerprint learned by the relay",
    );
    const peer = peers.find((p) => p.fingerprint === second.fingerprint)!;
    browser = await openBrowser();
    const { page } = browser;
    await page.goto(`${first.adminUrl}/console/`);
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    expect(await page.isVisible('#login')).toBe(false);
    expect(await page.isVisible('#sign-out')).toBe(false);
    expect(await page.locator('#cluster-source').textContent()).toContain('relay peers');
    expect(await page.locator('#cluster-table tbody tr[data-fingerprint]').getAttribute('data-fingerprint')).toBe(first.fingerprint);
    const row = page.locator(`#cluster-table tbody tr[data-peer="${peer.peer}"]`);
    await row.waitFor();
    expect(await row.locator('th').textContent()).toBe(second.fingerprint);
    expect(await row.textContent()).toContain('relay peer: up');
    expect(await row.textContent()).toContain(`sent ${peer.sent}`);
    // The card's relay table has the same peer, this gateway's own entry (state self) too.
    const card = page.locator(`article[data-fingerprint="${first.fingerprint}"]`);
    expect(await card.locator(`tr[data-peer="${peer.peer}"] code`).textContent()).toBe(second.fingerprint);
    expect(await card.locator('tr[data-peer] .badge').allTextContents()).toEqual(expect.arrayContaining(['up', 'self']));
  });

  it('says the tail needs a pasted token, and tails with one', async () => {
    const { page } = browser!;
    const help = page.locator('#tail-token-help');
    await help.waitFor({ state: 'visible' });
    expect(await help.textContent()).toContain('cannot mint one (no auth.clientTokens.hmacSecret)');
    await page.locator('#tail-phids').fill(PHID);
    await page.getByRole('button', { name: 'Start' }).click();
    expect(await page.locator('#tail-status').textContent()).toContain('cannot mint one: paste a token');
    await page.getByLabel('Connection token').fill(backendToken([PHID]));
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('#tail-status').filter({ hasText: 'Watching 1 PHID' }).waitFor({ timeout: 15_000 });
    // Published to the peer: it reaches this gateway's tail through the relay.
    const message = notification([PHID], { type: 'relay-test' });
    expect((await post(mesh.nodes[1].adminUrl, message)).status).toBe(200);
    await page.locator(`#tail-messages li[data-unique-id="${message.uniqueID as string}"]`).waitFor({ timeout: 10_000 });
    expect(browser!.problems).toEqual([]);
  });
});
