/**
 * HAProxy health checks against /readyz, on real processes: a node whose Redis bus stops
 * delivering is taken out; when no node is ready (Redis down for the whole cluster), the
 * unchecked backup servers keep sockets connecting instead of HAProxy refusing everyone.
 */
import { connectSocket, freePort, spawnGateway, startRedis, type GatewayProcess, type RedisHandle } from '@tidings/testing';
import { startHaproxy, type HaproxyProcess } from './haproxy';

describe('HAProxy and readiness', () => {
  let redis: RedisHandle;
  let haproxy: HaproxyProcess | undefined;
  const gateways: GatewayProcess[] = [];

  afterAll(async () => {
    // Settled, not awaited in turn: one failed stop must not leave the others running.
    await Promise.allSettled([haproxy?.stop(), ...gateways.map((g) => g.kill())]);
    await redis?.stop();
  });

  it('haproxy - nodes leave the pool when Redis stops delivering and return with it; sockets still connect while none is ready', async () => {
    redis = await startRedis({ own: true });
    const env = {
      TIDINGS_REDIS_URL: redis.url,
      TIDINGS_HEALTH_CANARY_INTERVAL_MS: '200',
      TIDINGS_HEALTH_CANARY_MAX_AGE_MS: '800',
    };
    const ports = await Promise.all([1, 2].map(async (i) => ({ name: `gw${i}`, clientPort: await freePort(), adminPort: await freePort() })));
    gateways.push(...(await Promise.all(ports.map((p) => spawnGateway({ env, clientPort: p.clientPort, adminPort: p.adminPort })))));
    haproxy = await startHaproxy(ports, 200);
    await haproxy.waitFor(['gw1', 'gw2'], 'UP');

    await redis.stop();
    await haproxy.waitFor(['gw1', 'gw2'], 'DOWN');
    // No node is ready, yet a socket through HAProxy reaches a gateway (which answers pings).
    const s = await connectSocket(`${haproxy.clientUrl}/`);
    await s.roundTrip();
    await s.close();

    await redis.start();
    await haproxy.waitFor(['gw1', 'gw2'], 'UP', 15_000);
  });
});
