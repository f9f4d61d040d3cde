/**
 * A rolling restart through a real load balancer: three gateways on a Redis bus with shared
 * history behind HAProxy; clients connected through HAProxy; a publisher posting through
 * HAProxy at a steady bounded rate while gw1 is drained (SIGTERM) and restarted, then gw2 is
 * killed with kill -9. Clients reconnect through HAProxy and ask for a replay of the gap, as
 * Phorge's JX.Aphlict does. Every client must end with every acknowledged message, and no
 * message may reach a client twice except as the (expected) overlap of a replay answer.
 */
import WebSocket from 'ws';
import {
  freePort,
  getStatus,
  sleep,
  spawnGateway,
  startRedis,
  type GatewayProcess,
  type RedisHandle,
} from '@tidings/testing';
import { startHaproxy, type HaproxyProcess } from './haproxy';

const PHID = 'PHID-USER-rolling';
const CLIENTS = 9;
const RATE_PER_S = 25;
const MAX_MESSAGES = 250;
const DRAIN_MS = 2_000;

interface Frame {
  id: string;
  connection: number;
  /** Arrived between this connection's replay request and the pong that follows it. */
  inReplayAnswer: boolean;
}

/** A client that behaves like JX.Aphlict: reconnect with backoff, resubscribe, replay the gap. */
class RollingClient {
  readonly frames: Frame[] = [];
  readonly closes: { code: number; at: number }[] = [];
  /** Connections that opened (attempts HAProxy refused while a node was going away are not counted). */
  connections = 0;
  private attempts = 0;
  private ws?: WebSocket;
  private stopped = false;
  private replaying = false;
  private lastDownAt: number | null = null;

  constructor(private readonly url: string) {}

  connect(): Promise<void> {
    return new Promise((resolve) => {
      const connection = ++this.attempts;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.on('open', () => {
        opened = true;
        this.connections++;
        ws.send(JSON.stringify({ command: 'subscribe', data: [PHID] }));
        if (this.lastDownAt !== null) {
          // Ask for what was published since the connection dropped, with a margin.
          const age = Math.min(60_000, Date.now() - this.lastDownAt + 2_000);
          this.replaying = true;
          ws.send(JSON.stringify({ command: 'replay', data: { age } }));
        }
        ws.send(JSON.stringify({ command: 'ping' }));
      });
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type?: string; uniqueID?: string };
        if (frame.type === 'pong') {
          this.replaying = false;
          resolve();
          return;
        }
        this.frames.push({ id: String(frame.uniqueID), connection, inReplayAnswer: this.replaying });
      });
      ws.on('error', () => undefined);
      ws.on('close', (code) => {
        if (opened) this.closes.push({ code, at: Date.now() });
        if (this.stopped) return resolve();
        this.lastDownAt ??= Date.now();
        // JX.Aphlict reconnects at once after an open connection, then backs off.
        setTimeout(() => void this.connect().then(() => (this.lastDownAt = null)), opened ? 50 : 300);
      });
    });
  }

  ids(): Set<string> {
    return new Set(this.frames.map((f) => f.id));
  }

  /** Copies beyond the first of an id that were not part of a replay answer. */
  unexplainedDuplicates(): string[] {
    const seen = new Set<string>();
    const bad: string[] = [];
    for (const f of this.frames) {
      if (seen.has(f.id) && !f.inReplayAnswer) bad.push(`${f.id}@${f.connection}`);
      seen.add(f.id);
    }
    return bad;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((r) => {
        ws.once('close', () => r());
        ws.terminate();
      });
    }
  }
}

describe('rolling restart through HAProxy', () => {
  let redis: RedisHandle;
  let haproxy: HaproxyProcess | undefined;
  const gateways: GatewayProcess[] = [];
  const clients: RollingClient[] = [];

  afterAll(async () => {
    // Settled, not awaited in turn: one failed stop must not leave the others running.
    await Promise.allSettled([...clients.map((c) => c.stop()), haproxy?.stop(), ...gateways.map((g) => g.kill())]);
    await redis?.stop();
  });

  it('rolling - drain one gateway and kill -9 another while publishing: every client ends with every acknowledged message, none twice', async () => {
    redis = await startRedis();
    const env = {
      TIDINGS_REDIS_URL: redis.url,
      TIDINGS_REDIS_KEY_PREFIX: `tidings-rolling-${process.pid}-${Date.now()}:`,
      TIDINGS_HEALTH_CANARY_INTERVAL_MS: '200',
      TIDINGS_HEALTH_CANARY_MAX_AGE_MS: '1000',
      TIDINGS_SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
    };
    const ports = await Promise.all([1, 2, 3].map(async (i) => ({ name: `gw${i}`, clientPort: await freePort(), adminPort: await freePort() })));
    const start = (i: number) => spawnGateway({ env, clientPort: ports[i].clientPort, adminPort: ports[i].adminPort });
    gateways.push(...(await Promise.all([0, 1, 2].map(start))));
    haproxy = await startHaproxy(ports, 300);
    await haproxy.waitFor(['gw1', 'gw2', 'gw3'], 'UP');

    for (let i = 0; i < CLIENTS; i++) {
      const c = new RollingClient(`${haproxy.clientUrl}/`);
      clients.push(c);
      await c.connect();
    }
    const onNode = await Promise.all(gateways.map(async (g) => (await getStatus(g.adminUrl))['clients.active'] as number));
    expect(onNode.reduce((a, b) => a + b, 0)).toBe(CLIENTS);
    // leastconn spreads the sockets over the three nodes.
    expect(Math.min(...onNode)).toBeGreaterThan(0);

    // The publisher: one POST at a time through HAProxy's admin frontend, 2 s timeout as Phorge.
    const acked: string[] = [];
    const failed: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      const started = Date.now();
      for (let n = 0; publishing && n < MAX_MESSAGES && Date.now() - started < 20_000; n++) {
        const next = started + ((n + 1) * 1000) / RATE_PER_S;
        const id = `rolling-${n}-${Math.random().toString(36).slice(2, 10)}`;
        try {
          const res = await fetch(`${haproxy!.adminUrl}/`, {
            method: 'POST',
            body: JSON.stringify({ type: 'notification', key: String(n), subscribers: [PHID], uniqueID: id }),
            signal: AbortSignal.timeout(2_000),
          });
          await res.text();
          (res.status === 200 ? acked : failed).push(id);
        } catch {
          failed.push(id);
        }
        await sleep(Math.max(0, next - Date.now()));
      }
    })();

    await sleep(1_500);
    // 1. Drain gw1 and restart it on the same ports (a rolling restart step).
    const onGw1 = (await getStatus(gateways[0].adminUrl))['clients.active'] as number;
    const drainStarted = Date.now();
    expect(await gateways[0].stop('SIGTERM')).toBe(0);
    const drainTook = Date.now() - drainStarted;
    gateways[0] = await start(0);
    await haproxy.waitFor(['gw1'], 'UP');

    // 2. kill -9 gw2.
    await sleep(500);
    const onGw2 = (await getStatus(gateways[1].adminUrl))['clients.active'] as number;
    await gateways[1].kill();
    await sleep(2_000);
    publishing = false;
    await publisher;

    // Everyone catches up (live or by replay).
    const want = new Set(acked);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !clients.every((c) => [...want].every((id) => c.ids().has(id)))) await sleep(100);

    const report = clients.map((c, i) => ({
      client: i,
      connections: c.connections,
      closes: c.closes.map((x) => x.code),
      missing: acked.filter((id) => !c.ids().has(id)).length,
      frames: c.frames.length,
      replayOverlap: c.frames.length - c.ids().size,
      unexplainedDuplicates: c.unexplainedDuplicates(),
    }));
    process.stdout.write(
      `rolling: ${acked.length} acknowledged, ${failed.length} not acknowledged; drain took ${drainTook} ms; ` +
        `gw1 had ${onGw1} clients, gw2 had ${onGw2}\n${report.map((r) => JSON.stringify(r)).join('\n')}\n`,
    );

    expect(acked.length).toBeGreaterThan(100);
    for (const r of report) {
      expect({ client: r.client, missing: r.missing, unexplainedDuplicates: r.unexplainedDuplicates }).toEqual({
        client: r.client,
        missing: 0,
        unexplainedDuplicates: [],
      });
    }
    // gw1's clients were closed with 1001 (through HAProxy), spread over the drain window;
    // gw2's lost their connection without a close frame.
    const codes = clients.flatMap((c) => c.closes.map((x) => x.code));
    expect(codes.filter((c) => c === 1001)).toHaveLength(onGw1);
    expect(codes.filter((c) => c !== 1001)).toHaveLength(onGw2);
    expect(clients.reduce((n, c) => n + c.connections, 0)).toBe(CLIENTS + onGw1 + onGw2);
    expect(drainTook).toBeLessThan(DRAIN_MS + 4_000);
    const states = await haproxy.states();
    expect(states['tidings_clients/gw1']).toMatch(/^UP/);
    expect(states['tidings_clients/gw2']).toMatch(/^DOWN/);
  });
});
