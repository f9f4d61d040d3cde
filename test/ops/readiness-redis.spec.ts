/**
 * Readiness of a real gateway process on a real Redis bus: the canary travels through
 * Redis; stopping Redis turns the node unready (with the reason), restarting it turns the
 * node ready again; /metrics shows the round trips.
 */
import { spawnGateway, startRedis, sleep, type GatewayProcess, type RedisHandle } from '@tidings/testing';

async function readyz(adminUrl: string): Promise<{ status: number; body: { status: string; reasons?: { code: string; message: string }[] } }> {
  const res = await fetch(`${adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reasons?: { code: string; message: string }[] } };
}

async function waitReady(adminUrl: string, want: boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await readyz(adminUrl);
    if ((r.status === 200) === want) return r;
    if (Date.now() > deadline) throw new Error(`not ${want ? 'ready' : 'unready'} within ${timeoutMs} ms: ${JSON.stringify(r.body)}`);
    await sleep(100);
  }
}

describe('readiness on a Redis bus', () => {
  let redis: RedisHandle;
  let gateway: GatewayProcess | undefined;

  beforeAll(async () => {
    redis = await startRedis({ own: true });
  });
  afterAll(async () => {
    await gateway?.kill();
    await redis?.stop();
  });

  it('readiness - ready once the canary came back through Redis; unready while Redis is down; ready again after it returns', async () => {
    gateway = await spawnGateway({
      env: {
        TIDINGS_REDIS_URL: redis.url,
        TIDINGS_HEALTH_CANARY_INTERVAL_MS: '200',
        TIDINGS_HEALTH_CANARY_MAX_AGE_MS: '1000',
      },
    });
    await waitReady(gateway.adminUrl, true, 5_000);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    const count = Number(/^tidings_bus_round_trip_seconds_count (\d+)$/m.exec(metrics)?.[1]);
    expect(count).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^tidings_bus_connected 1$/m);

    await redis.stop();
    const down = await waitReady(gateway.adminUrl, false, 5_000);
    const codes = down.body.reasons!.map((r) => r.code);
    expect(codes.some((c) => c === 'bus_disconnected' || c === 'bus_not_delivering')).toBe(true);
    // The process keeps serving.
    expect((await fetch(`${gateway.adminUrl}/healthz`)).status).toBe(200);

    await redis.start();
    await waitReady(gateway.adminUrl, true, 15_000);
    expect(gateway.child.exitCode).toBeNull();
  });
});
