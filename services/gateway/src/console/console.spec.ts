/**
 * The console's gateway side: the sampler's rates and event-loop delay, the gateway
 * directory on a real Redis (expiry on Redis's clock, removal, one hash slot), and the page
 * and API over real HTTP on gateways in this process, admin tokens and client tokens on.
 */
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { createClientTokenVerifier } from '@tidings/auth';
import { resolveConfig, silentLogger, type ConsoleOverview, type GatewaySnapshot, type Logger } from '@tidings/protocol';
import { startRedisServer, sleep, type RedisHandle } from '@tidings/testing';
import { Gateway } from '../gateway';
import { createCollaborators } from '../wiring';
import { ConsoleSampler } from './console-sampler';
import { createConsoleKeys } from './console-keys';
import { GatewayDirectory } from './gateway-directory';
import { RateSeries } from './rate-series';
import { ANNOUNCE_TTL_MS } from './console-service';

const ADMIN_TOKEN = 'console-spec-admin-token-0123';
const HMAC_SECRET = 'console-spec-hmac-secret-0123456789abcdef';

function recordingLogger(lines: string[]): Logger {
  const log = (obj: object, msg?: string) => lines.push(JSON.stringify({ ...obj, msg }));
  const logger: Logger = { trace: log, debug: log, info: log, warn: log, error: log, child: () => logger };
  return logger;
}

describe('console: RateSeries and ConsoleSampler', () => {
  it('keeps a fixed window of per-second rates, oldest first', () => {
    const series = new RateSeries({ stepMs: 5_000, points: 3 });
    expect(series.add(50, 5_000, 1_000)).toBe(10);
    series.add(1, 3_000, 2_000);
    series.add(0, 5_000, 3_000);
    series.add(7, 5_000, 4_000);
    expect(series.toArray()).toEqual([0.333, 0, 1.4]);
    expect(series.end).toBe(4_000);
    expect(series.last).toBe(1.4);
  });

  it('samples publishes and deliveries as rates over the time that really passed', () => {
    const counters = { messagesIn: 0, messagesOut: 0 };
    let now = 1_000_000;
    const sampler = new ConsoleSampler({ counters, stepMs: 5_000, windowMs: 15_000, now: () => now });
    counters.messagesIn = 20;
    counters.messagesOut = 60;
    now += 4_000;
    sampler.sample();
    expect(sampler.rates).toEqual({ publishesPerSecond: 5, deliveriesPerSecond: 15 });
    for (let i = 0; i < 4; i++) {
      counters.messagesIn += 10;
      now += 5_000;
      sampler.sample();
    }
    const series = sampler.series();
    expect(series).toEqual({ stepMs: 5_000, end: now, publishesPerSecond: [2, 2, 2], deliveriesPerSecond: [0, 0, 0] });
    sampler.close();
  });

  it('reports the event loop delay beyond its resolution: about 0 idle, the block when blocked', async () => {
    const sampler = new ConsoleSampler({ counters: { messagesIn: 0, messagesOut: 0 }, stepMs: 60_000, loopResolutionMs: 10 });
    sampler.start();
    await sleep(300);
    sampler.sample();
    const idle = sampler.eventLoop;
    // The histogram's first tick after a reset records nothing: block after it.
    await sleep(50);
    const until = Date.now() + 150;
    while (Date.now() < until) {
      // block the loop
    }
    await sleep(50);
    sampler.sample();
    const blocked = sampler.eventLoop;
    sampler.close();
    // Positive control first: a loop that did nothing shows (almost) no delay.
    expect(idle.maxMs).toBeLessThan(60);
    expect(blocked.maxMs).toBeGreaterThanOrEqual(120);
    expect(blocked.maxMs).toBeGreaterThan(idle.maxMs);
  });
});

describe('console: the gateway directory in Redis', () => {
  let redis: RedisHandle;
  let client: Redis;
  let control: Redis;

  beforeAll(async () => {
    redis = await startRedisServer();
    client = new Redis(redis.url);
    control = new Redis(redis.url);
  });
  afterAll(async () => {
    client.disconnect();
    control.disconnect();
    await redis.stop();
  });

  const snapshot = (fingerprint: string): GatewaySnapshot => ({ fingerprint, version: 'x' }) as unknown as GatewaySnapshot;

  it('keeps both keys in one hash slot of the prefix', () => {
    const keys = createConsoleKeys('acme:');
    expect(keys).toEqual({ gateways: '{acme:console}:gateways', snapshots: '{acme:console}:snapshots' });
    expect(calculateSlot(keys.gateways)).toBe(calculateSlot(keys.snapshots));
    // Positive control: without the tag the two names would not share a slot.
    expect(calculateSlot('acme:console:gateways')).not.toBe(calculateSlot('acme:console:snapshots'));
  });

  it('lists gateways until their announcement expires, sweeps them, and removes one at once', async () => {
    const keys = createConsoleKeys('dir-1:');
    const directory = new GatewayDirectory({ client, keys, ttlMs: 400, logger: silentLogger });
    await directory.announce(snapshot('bbbbbbbbbbbbbbbb'));
    await directory.announce(snapshot('aaaaaaaaaaaaaaaa'));
    await directory.announce(snapshot('cccccccccccccccc'));
    expect((await directory.list()).map((s) => s.fingerprint)).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb', 'cccccccccccccccc']);
    await directory.remove('cccccccccccccccc');
    expect((await directory.list()).map((s) => s.fingerprint)).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    // b stops announcing; a goes on.
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      await directory.announce(snapshot('aaaaaaaaaaaaaaaa'));
    }
    expect((await directory.list()).map((s) => s.fingerprint)).toEqual(['aaaaaaaaaaaaaaaa']);
    // The announce swept b from both keys, and both keys expire by themselves.
    expect(await control.hkeys(keys.snapshots)).toEqual(['aaaaaaaaaaaaaaaa']);
    expect(await control.zrange(keys.gateways, 0, -1)).toEqual(['aaaaaaaaaaaaaaaa']);
    expect(await control.pttl(keys.gateways)).toBeGreaterThan(0);
    expect(await control.pttl(keys.snapshots)).toBeGreaterThan(0);
  });

  it('leaves out an entry that does not decode, and logs it', async () => {
    const keys = createConsoleKeys('dir-2:');
    const lines: string[] = [];
    const directory = new GatewayDirectory({ client, keys, ttlMs: 10_000, logger: recordingLogger(lines) });
    await directory.announce(snapshot('goodgoodgoodgood'));
    await control.zadd(keys.gateways, Date.now() + 60_000, 'broken');
    await control.hset(keys.snapshots, 'broken', '{not json');
    expect((await directory.list()).map((s) => s.fingerprint)).toEqual(['goodgoodgoodgood']);
    expect(lines.join('\n')).toContain('not JSON was ignored');
  });
});

describe('console: page and API on a gateway', () => {
  let redis: RedisHandle;
  const gateways: Gateway[] = [];
  const lines: string[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.close()));
    await redis.stop();
  });

  async function startGateway(extra: Record<string, unknown>, logger: Logger = silentLogger): Promise<Gateway> {
    const config = resolveConfig({
      servers: [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port: 0, listen: '127.0.0.1' },
      ],
      ...extra,
    });
    const gw = await new Gateway({ config, logger, ...createCollaborators(config, silentLogger) }).start();
    gateways.push(gw);
    return gw;
  }

  const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
  const withTokens = (prefix: string) => ({
    redis: { url: redis.url, keyPrefix: prefix },
    auth: { adminTokens: [ADMIN_TOKEN], clientTokens: { mode: 'required', hmacSecret: HMAC_SECRET } },
  });

  it('serves the page without a token, marked as needing one, with its security headers', async () => {
    const gw = await startGateway(withTokens('page:'));
    const admin = gw.url('admin');
    const page = await fetch(`${admin}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('<body data-admin-auth="required">');
    const script = await fetch(`${admin}/console/console.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const etag = script.headers.get('etag')!;
    expect((await fetch(`${admin}/console/console.js`, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    const bare = await fetch(`${admin}/console`, { redirect: 'manual' });
    expect([bare.status, bare.headers.get('location')]).toEqual([301, '/console/']);
    expect((await fetch(`${admin}/console/nothing.js`)).status).toBe(404);
    // The figures are not: the API is behind the admin gate like /status/.
    const refused = await fetch(`${admin}/console/api/overview`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await fetch(`${admin}/console/api/overview`, { headers: { Authorization: 'Bearer not-the-token-0123456789' } });
    expect(wrong.status).toBe(401);
    const overview = (await (await fetch(`${admin}/console/api/overview`, { headers: auth })).json()) as ConsoleOverview;
    expect(overview.self).toBe(gw.node.fingerprint);
    expect(overview.gateways[0].fingerprint).toBe(gw.node.fingerprint);
    expect(overview.tail).toEqual({ clientTokens: 'required', canMintTokens: true, socketioPath: '/socket.io/' });
    // Positive control: without admin tokens the page is not marked.
    const open = await startGateway({});
    expect(await (await fetch(`${open.url('admin')}/console/`)).text()).toContain('<body>');
    expect((await fetch(`${open.url('admin')}/console/api/overview`)).status).toBe(200);
  });

  it('shows every gateway announced on the same Redis and prefix, and drops one that closed', async () => {
    const a = await startGateway(withTokens('cluster:'));
    const b = await startGateway(withTokens('cluster:'));
    const other = await startGateway(withTokens('another:'));
    const fingerprints = async () => {
      const res = await fetch(`${a.url('admin')}/console/api/overview`, { headers: auth });
      return ((await res.json()) as ConsoleOverview).gateways.map((g) => g.fingerprint);
    };
    let seen: string[] = [];
    for (let i = 0; i < 50 && seen.length < 2; i++) {
      seen = await fingerprints();
      if (seen.length < 2) await sleep(100);
    }
    expect(seen[0]).toBe(a.node.fingerprint);
    expect(seen.slice(1)).toEqual([b.node.fingerprint]);
    expect(seen).not.toContain(other.node.fingerprint);
    const snapshotOfB = await fetch(`${a.url('admin')}/console/api/overview`, { headers: auth }).then(async (r) => ((await r.json()) as ConsoleOverview).gateways[1]);
    expect(snapshotOfB).toMatchObject({ fingerprint: b.node.fingerprint, ready: expect.any(Boolean), bus: { connected: true } });
    await b.close();
    // Taken out at close, not after its lifetime.
    expect(ANNOUNCE_TTL_MS).toBeGreaterThan(2_000);
    expect(await fingerprints()).toEqual([a.node.fingerprint]);
  });

  it('mints a short-lived connection token for the tail that the client port accepts, and refuses what it should', async () => {
    const gw = await startGateway(withTokens('mint:'), recordingLogger(lines));
    const admin = gw.url('admin');
    const mint = (body: unknown, headers: Record<string, string> = auth) =>
      fetch(`${admin}/console/api/client-token`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const res = await mint({ instance: 'acme', phids: ['PHID-USER-a', 'PHID-TASK-b'] });
    expect(res.status).toBe(200);
    const { token, expiresAt } = (await res.json()) as { token: string; expiresAt: number };
    expect(expiresAt - Date.now()).toBeGreaterThan(290_000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(300_000);
    const verifier = createClientTokenVerifier({ mode: 'required', hmacSecret: HMAC_SECRET });
    const verified = await verifier.verify(token, { instance: 'acme' });
    expect(verified.ok).toBe(true);
    if (verified.ok) {
      expect(verified.grant.allows('PHID-USER-a')).toBe(true);
      expect(verified.grant.allows('PHID-USER-other')).toBe(false);
    }
    expect((await verifier.verify(token, { instance: 'other' })).ok).toBe(false);
    expect(lines.join('\n')).toContain('minted a connection token');
    expect(lines.join('\n')).not.toContain(token);

    expect((await mint({ instance: 'acme', phids: ['PHID-USER-*'] })).status).toBe(400);
    expect((await mint({ instance: 'acme', phids: [] })).status).toBe(400);
    expect((await mint({ instance: 'a/b', phids: ['PHID-USER-a'] })).status).toBe(400);
    expect((await mint('{"instance":')).status).toBe(400);
    expect((await mint({ instance: 'acme', phids: Array.from({ length: 101 }, (_, i) => `PHID-USER-${i}`) })).status).toBe(400);
    expect((await mint({ instance: 'acme', phids: ['PHID-USER-a'] }, {})).status).toBe(401);
    const status = (await (await fetch(`${admin}/status/`, { headers: auth })).json()) as { 'messages.rejected': Record<string, number> };
    expect(status['messages.rejected']).toMatchObject({ console_invalid_token_request: 4, console_invalid_json: 1, unauthorized: 1 });
  });

  it('says it cannot mint without auth.clientTokens.hmacSecret', async () => {
    const gw = await startGateway({ auth: { adminTokens: [ADMIN_TOKEN] } });
    const res = await fetch(`${gw.url('admin')}/console/api/client-token`, { method: 'POST', headers: auth, body: JSON.stringify({ instance: 'acme', phids: ['PHID-USER-a'] }) });
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({ error: 'cannot_mint' });
    const overview = (await (await fetch(`${gw.url('admin')}/console/api/overview`, { headers: auth })).json()) as ConsoleOverview;
    expect(overview).toMatchObject({ cluster: 'none', tail: { clientTokens: 'off', canMintTokens: false } });
  });
});
