/** GET /metrics of an in-process gateway: Prometheus text whose numbers follow what happened. */
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { Gateway, createCollaborators } from '@tidings/gateway';
import { connectSocket, freePort, messagesOf, notification, post, startRedis, type RedisHandle, type TestSocket } from '@tidings/testing';

/** `name{labels} value` lines into a map; label order as prom-client writes it. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

async function scrape(adminUrl: string): Promise<{ contentType: string; samples: Map<string, number>; text: string }> {
  const res = await fetch(`${adminUrl}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { contentType: res.headers.get('content-type') ?? '', samples: parse(text), text };
}

describe('metrics', () => {
  let gateway: Gateway;
  const sockets: TestSocket[] = [];
  let deadPeer: number;

  beforeAll(async () => {
    deadPeer = await freePort();
    const config = resolveConfig({
      servers: [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port: 0, listen: '127.0.0.1' },
      ],
      cluster: [{ host: '127.0.0.1', port: deadPeer, protocol: 'http' }],
      relay: { retryMinMs: 50, retryMaxMs: 100, timeoutMs: 500 },
    });
    gateway = await new Gateway({ config, logger: silentLogger, ...createCollaborators(config, silentLogger) }).start();
  });
  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await gateway.close();
  });

  it('metrics - Prometheus text with process metrics and the tidings_* families', async () => {
    const { contentType, text } = await scrape(gateway.url('admin'));
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const family of [
      'tidings_connections',
      'tidings_publishes_total',
      'tidings_deliveries_total',
      'tidings_duplicates_dropped_total',
      'tidings_replays_total',
      'tidings_slow_reader_closes_total',
      'tidings_rejected_total',
      'tidings_history_size',
      'tidings_relay_sent_total',
      'tidings_relay_failed_total',
      'tidings_relay_dropped_total',
      'tidings_bus_publish_seconds',
      'tidings_bus_round_trip_seconds',
      'tidings_history_append_seconds',
      'tidings_ready',
      'nodejs_eventloop_lag_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
    ]) {
      expect(text).toContain(`# TYPE ${family} `);
    }
  });

  it('metrics - counts follow connections, publishes, deliveries, duplicates, replays, rejections and relay failures', async () => {
    const admin = gateway.url('admin');
    const before = (await scrape(admin)).samples;
    const base = (name: string) => before.get(name) ?? 0;

    for (let i = 0; i < 2; i++) {
      const s = await connectSocket(`${gateway.url('client')}/~acme/`);
      sockets.push(s);
      s.send('subscribe', ['PHID-USER-m']);
      await s.roundTrip();
    }
    const message = notification(['PHID-USER-m']);
    expect((await post(admin, message, { instance: 'acme' })).status).toBe(200);
    expect((await post(admin, message, { instance: 'acme' })).status).toBe(200); // same uniqueID: dropped
    expect((await post(admin, 'not json', { raw: true })).status).toBe(400);
    for (const s of sockets) await s.waitFor((r) => messagesOf(r).length === 1, 2_000, 'the message');
    sockets[0].send('replay', { age: 60_000 });
    await sockets[0].waitFor((r) => messagesOf(r).length === 2, 2_000, 'the replayed message');

    // The relay to the dead peer fails and is counted (it retries with backoff).
    const peer = `127.0.0.1:${deadPeer}`;
    const deadline = Date.now() + 5_000;
    let after = (await scrape(admin)).samples;
    while ((after.get(`tidings_relay_failed_total{peer="${peer}"}`) ?? 0) < 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = (await scrape(admin)).samples;
    }

    expect(after.get('tidings_connections{transport="raw",instance="acme"}')).toBe(2);
    expect(after.get('tidings_publishes_total')).toBe(base('tidings_publishes_total') + 2);
    expect(after.get('tidings_deliveries_total')).toBe(base('tidings_deliveries_total') + 2);
    expect(after.get('tidings_duplicates_dropped_total')).toBe(base('tidings_duplicates_dropped_total') + 1);
    expect(after.get('tidings_replays_total')).toBe(base('tidings_replays_total') + 1);
    const rejected = [...after].filter(([k]) => k.startsWith('tidings_rejected_total{'));
    expect(rejected.reduce((sum, [, v]) => sum + v, 0)).toBe(1);
    expect(after.get('tidings_history_size{instance="acme"}')).toBe(1);
    expect(after.get(`tidings_relay_failed_total{peer="${peer}"}`)).toBeGreaterThanOrEqual(1);
    expect(after.get(`tidings_relay_sent_total{peer="${peer}"}`)).toBe(0);
    expect(after.get(`tidings_relay_peer_up{peer="${peer}"}`)).toBe(0);
    expect(after.get('tidings_history_append_seconds_count')).toBe(base('tidings_history_append_seconds_count') + 1);
    expect(after.get('tidings_ready')).toBe(1);
  });

  it('metrics - the bus publish histogram gets a sample per publish with Redis too (the append script publishes)', async () => {
    let redis: RedisHandle | undefined;
    let g: Gateway | undefined;
    try {
      redis = await startRedis();
      const config = resolveConfig({
        servers: [
          { type: 'client', port: 0, listen: '127.0.0.1' },
          { type: 'admin', port: 0, listen: '127.0.0.1' },
        ],
        redis: { url: redis.url, keyPrefix: `metrics-${process.pid}:` },
      });
      g = await new Gateway({ config, logger: silentLogger, ...createCollaborators(config, silentLogger) }).start();
      const before = (await scrape(g.url('admin'))).samples.get('tidings_bus_publish_seconds_count') ?? 0;
      for (let i = 0; i < 3; i++) expect((await post(g.url('admin'), notification(['PHID-USER-bus']))).status).toBe(200);
      const after = (await scrape(g.url('admin'))).samples;
      expect(after.get('tidings_bus_publish_seconds_count')).toBe(before + 3);
      expect(after.get('tidings_history_append_seconds_count')).toBe(before + 3);
    } finally {
      await g?.close();
      if (redis?.owned) await redis.stop();
    }
  });

  it('metrics - each gateway has its own registry: two in one process do not share series', async () => {
    const config = resolveConfig({
      servers: [
        { type: 'client', port: 0, listen: '127.0.0.1' },
        { type: 'admin', port: 0, listen: '127.0.0.1' },
      ],
    });
    const other = await new Gateway({ config, logger: silentLogger }).start();
    try {
      expect((await post(other.url('admin'), notification(['PHID-USER-x']))).status).toBe(200);
      const mine = (await scrape(gateway.url('admin'))).samples.get('tidings_publishes_total');
      const theirs = (await scrape(other.url('admin'))).samples.get('tidings_publishes_total');
      expect(theirs).toBe(1);
      expect(mine).toBeGreaterThanOrEqual(2);
      expect(other.metrics.registry).not.toBe(gateway.metrics.registry);
    } finally {
      await other.close();
    }
  });
});
