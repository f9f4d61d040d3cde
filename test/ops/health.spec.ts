/**
 * /healthz and /readyz of in-process gateways. The bus here is a small, real in-process
 * implementation of the Bus contract whose delivery can be stopped while it still reports
 * itself connected: the failure readiness must catch (delivery stopped, health green).
 * The same failure on a real Redis connection, and its repair, is bus-repair.spec.ts.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Bus, BusEvents, BusMessage } from '@tidings/bus';
import { resolveConfig, silentLogger, type Envelope } from '@tidings/protocol';
import { Gateway } from '@tidings/gateway';
import { connectSocket, messagesOf, notification, post, sleep, type TestSocket } from '@tidings/testing';

/** The shared medium of StoppableBus nodes. */
class Wire {
  readonly nodes = new Set<StoppableBus>();
  /** When false, everything sent is silently lost (publishes still "succeed"). */
  delivering = true;
}

type Frame = { kind: 'message'; message: BusMessage } | { kind: 'canary'; origin: string; nonce: string };

class StoppableBus extends EventEmitter<BusEvents> implements Bus {
  readonly nodeId = randomBytes(6).toString('hex');
  private connected = false;
  private readonly canaries = new Map<string, () => void>();
  /** Reconnects the canary asked for. */
  reconnects: string[] = [];
  /** Own messages are never echoed here (this test bus carries no positions). */
  echoes = false;

  constructor(private readonly wire: Wire) {
    super();
  }

  get isConnected(): boolean {
    return this.connected;
  }

  async start(): Promise<void> {
    this.wire.nodes.add(this);
    this.setConnected(true);
  }

  reconnect(reason: string): void {
    this.reconnects.push(reason);
    this.setConnected(false);
    this.setConnected(true);
  }

  setConnected(up: boolean): void {
    if (up === this.connected) return;
    this.connected = up;
    if (up) this.emit('up', { reconnect: false, downSince: null });
    else this.emit('down', new Error('wire: disconnected'));
  }

  async publish(message: Envelope): Promise<void> {
    if (!this.connected) throw new Error('wire: not connected');
    this.send({ kind: 'message', message: { ...message, origin: this.nodeId } });
  }

  roundTrip(timeoutMs: number): Promise<number> {
    if (!this.connected) return Promise.reject(new Error('wire: not connected'));
    const nonce = randomBytes(6).toString('hex');
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.canaries.delete(nonce);
        reject(new Error(`wire: canary not back within ${timeoutMs} ms`));
      }, timeoutMs);
      this.canaries.set(nonce, () => {
        clearTimeout(timer);
        resolve(performance.now() - started);
      });
      this.send({ kind: 'canary', origin: this.nodeId, nonce });
    });
  }

  async close(): Promise<void> {
    this.wire.nodes.delete(this);
    this.connected = false;
    for (const nonce of this.canaries.keys()) this.canaries.delete(nonce);
  }

  private send(frame: Frame): void {
    if (!this.wire.delivering) return;
    for (const node of this.wire.nodes) setImmediate(() => node.receive(frame));
  }

  private receive(frame: Frame): void {
    if (!this.connected) return;
    if (frame.kind === 'canary') {
      if (frame.origin === this.nodeId) this.canaries.get(frame.nonce)?.();
      return;
    }
    if (frame.message.origin !== this.nodeId) this.emit('message', frame.message);
  }
}

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    health: { canaryIntervalMs: 50, canaryMaxAgeMs: 300 },
    ...extra,
  });
}

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function waitForReady(adminUrl: string, want: boolean, timeoutMs = 3_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await get(`${adminUrl}/readyz`);
    if ((r.status === 200) === want) return r.body;
    if (Date.now() > deadline) throw new Error(`readyz did not turn ${want ? 'ready' : 'unready'} within ${timeoutMs} ms: ${JSON.stringify(r.body)}`);
    await sleep(25);
  }
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('health endpoints', () => {
  const gateways: Gateway[] = [];
  const sockets: TestSocket[] = [];
  afterEach(async () => {
    await Promise.all(sockets.splice(0).map((s) => s.close()));
    await Promise.all(gateways.splice(0).map((g) => g.close()));
  });

  async function start(options: { bus?: Bus; cfg?: ReturnType<typeof config> } = {}): Promise<Gateway> {
    const g = new Gateway({ config: options.cfg ?? config(), logger: silentLogger, bus: options.bus });
    gateways.push(g);
    return g.start();
  }

  it('health - /healthz answers {"status":"ok"} and /readyz is ready on a node without a bus', async () => {
    const g = await start();
    const admin = g.url('admin');
    const health = await get(`${admin}/healthz`);
    expect(health).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await get(`${admin}/readyz`)).toEqual({ status: 200, body: { status: 'ready' } });
  });

  it('health - with a bus, ready only once a canary came back; a bus that stops delivering turns the node unready, and ready again when delivery resumes', async () => {
    const wire = new Wire();
    const aBus = new StoppableBus(wire);
    const a = await start({ bus: aBus });
    const b = await start({ bus: new StoppableBus(wire) });
    await waitForReady(a.url('admin'), true);
    await waitForReady(b.url('admin'), true);

    // The wire really carries messages between the two nodes.
    const s = await connectSocket(b.url('client'));
    sockets.push(s);
    s.send('subscribe', ['PHID-USER-health']);
    await s.roundTrip();
    expect((await post(a.url('admin'), notification(['PHID-USER-health']))).status).toBe(200);
    await s.waitFor((r) => messagesOf(r).length === 1, 2_000, 'message across the wire');

    wire.delivering = false;
    const unready = await waitForReady(a.url('admin'), false);
    expect(unready.status).toBe('unready');
    const reasons = unready.reasons as { code: string; message: string }[];
    // Still connected: only the canary notices that nothing arrives.
    expect(reasons.map((r) => r.code)).toEqual(['bus_not_delivering']);
    expect(reasons[0].message).toMatch(/canary/);
    expect((await get(`${a.url('admin')}/healthz`)).status).toBe(200);
    await waitForReady(b.url('admin'), false);
    // The canary asks a bus that looks connected but does not deliver to reconnect.
    await waitFor(() => aBus.reconnects.length > 0, 'a reconnect asked by the canary');
    expect(aBus.reconnects[0]).toMatch(/canary/);

    wire.delivering = true;
    await waitForReady(a.url('admin'), true);
    await waitForReady(b.url('admin'), true);
  });

  it('health - a disconnected bus is a reason of its own', async () => {
    const wire = new Wire();
    const bus = new StoppableBus(wire);
    const g = await start({ bus });
    await waitForReady(g.url('admin'), true);
    bus.setConnected(false);
    const body = await waitForReady(g.url('admin'), false);
    expect((body.reasons as { code: string }[]).map((r) => r.code)).toContain('bus_disconnected');
    bus.setConnected(true);
    await waitForReady(g.url('admin'), true);
  });

  it('health - a node with a bus is not ready before any canary came back', async () => {
    const wire = new Wire();
    wire.delivering = false;
    const g = await start({ bus: new StoppableBus(wire) });
    const r = await get(`${g.url('admin')}/readyz`);
    expect(r.status).toBe(503);
    expect((r.body.reasons as { code: string; message: string }[])[0]).toMatchObject({
      code: 'bus_not_delivering',
      message: expect.stringMatching(/no canary has come back/),
    });
    const status = (await (await fetch(`${g.url('admin')}/status/`)).json()) as Record<string, { sent: number; lastOkAt: unknown }>;
    expect(status.canary.lastOkAt).toBeNull();
  });

  it('health - a canary age limit below its interval is refused, naming the config keys', () => {
    // resolveConfig (and so --test=true) refuses it ...
    expect(() => config({ health: { canaryIntervalMs: 500, canaryMaxAgeMs: 100 } })).toThrow(
      'health.canaryMaxAgeMs (100) must be at least health.canaryIntervalMs (500)',
    );
    // ... and so does the gateway, for options built some other way.
    const cfg = config();
    cfg.health = { canaryIntervalMs: 500, canaryMaxAgeMs: 100 };
    expect(() => new Gateway({ config: cfg, logger: silentLogger, bus: new StoppableBus(new Wire()) })).toThrow(
      'health.canaryMaxAgeMs (100) must be at least health.canaryIntervalMs (500)',
    );
  });

  it('drain - close() turns readiness false at once, /healthz stays 200, new sockets are refused, and open ones get 1001', async () => {
    const g = await start();
    const admin = g.url('admin');
    const s = await connectSocket(g.url('client'));
    sockets.push(s);
    const closing = g.close(600);
    const r = await get(`${admin}/readyz`);
    expect(r.status).toBe(503);
    expect((r.body.reasons as { code: string }[]).map((x) => x.code)).toEqual(['draining']);
    expect((await get(`${admin}/healthz`)).status).toBe(200);
    await expect(connectSocket(g.url('client'))).rejects.toThrow();
    expect((await s.closed).code).toBe(1001);
    await closing;
  });

  it('drain - 1001 closes are spread over the drain window, not sent at once', async () => {
    const g = await start();
    const n = 10;
    const windowMs = 1_000;
    const opened = await Promise.all(Array.from({ length: n }, () => connectSocket(g.url('client'))));
    sockets.push(...opened);
    const t0 = Date.now();
    const times = opened.map((s) => s.closed.then(({ code }) => ({ code, at: Date.now() - t0 })));
    await g.close(windowMs);
    const closes = (await Promise.all(times)).sort((x, y) => x.at - y.at);
    expect(closes.every((c) => c.code === 1001)).toBe(true);
    // One close per slot of windowMs/n, at a random moment within it.
    expect(closes[0].at).toBeLessThan(windowMs / n + 150);
    expect(closes[n - 1].at).toBeGreaterThan(windowMs - windowMs / n - 50);
    expect(closes[n - 1].at).toBeLessThan(windowMs + 500);
    const firstHalf = closes.filter((c) => c.at < windowMs / 2).length;
    expect(firstHalf).toBeGreaterThanOrEqual(3);
    expect(firstHalf).toBeLessThanOrEqual(7);
  });
});
