/**
 * SIGTERM on a real gateway process: readiness false at once, no new sockets, 1001 closes
 * spread over shutdown.drainMs, publishes in flight finished, exit 0, pidfile gone.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectSocket, messagesOf, notification, post, spawnGateway, type GatewayProcess, type TestSocket } from '@tidings/testing';

describe('drain on SIGTERM', () => {
  let gateway: GatewayProcess | undefined;
  const sockets: TestSocket[] = [];
  afterEach(async () => {
    await Promise.all(sockets.splice(0).map((s) => s.close()));
    await gateway?.kill();
  });

  it('drain - SIGTERM: unready at once, new sockets refused, 1001 spread over the window, admin serves until the end, exit 0, pidfile removed', async () => {
    const pidfile = join(mkdtempSync(join(tmpdir(), 'tidings-pid-')), 'run', 'tidings.pid');
    const drainMs = 1_500;
    gateway = await spawnGateway({ config: { pidfile }, env: { TIDINGS_SHUTDOWN_DRAIN_MS: String(drainMs) } });
    expect(readFileSync(pidfile, 'utf8')).toBe(`${gateway.pid}\n`);

    const n = 6;
    for (let i = 0; i < n; i++) {
      const s = await connectSocket(gateway.clientUrl);
      s.send('subscribe', ['PHID-USER-drain']);
      await s.roundTrip();
      sockets.push(s);
    }
    const t0 = Date.now();
    const closes = sockets.map((s) => s.closed.then((c) => ({ ...c, at: Date.now() - t0 })));
    gateway.child.kill('SIGTERM');

    // Readiness turns false at once (poll until the signal has been handled: a few ms).
    let ready = await fetch(`${gateway.adminUrl}/readyz`);
    while (ready.status === 200 && Date.now() - t0 < 500) ready = await fetch(`${gateway.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unready', reasons: [expect.objectContaining({ code: 'draining' })] });
    expect(Date.now() - t0).toBeLessThan(500);
    expect((await fetch(`${gateway.adminUrl}/healthz`)).status).toBe(200);
    await expect(connectSocket(gateway.clientUrl)).rejects.toThrow();
    // Process managers may signal again: a repeated SIGTERM does not cut the drain short.
    gateway.child.kill('SIGTERM');

    // Publishes during the drain are still accepted and reach the sockets not closed yet.
    const during = await post(gateway.adminUrl, notification(['PHID-USER-drain']));
    expect(during.status).toBe(200);

    const closed = (await Promise.all(closes)).sort((a, b) => a.at - b.at);
    expect(closed.map((c) => c.code)).toEqual(Array(n).fill(1001));
    expect(closed[0].at).toBeLessThan(drainMs / 2);
    expect(closed[n - 1].at).toBeGreaterThan(drainMs / 2);
    // Sockets still open when the publish came got it.
    const receivedIt = sockets.filter((s) => messagesOf(s.received).length === 1).length;
    expect(receivedIt).toBeGreaterThan(0);

    expect(await gateway.exited).toBe(0);
    expect(existsSync(pidfile)).toBe(false);
    const logs = gateway.logs.map((l) => l.msg);
    expect(logs).toContain('shutting down');
    expect(logs).toContain('gateway closed');
    expect(logs).toContain('already shutting down');
  });

  it('drain - SIGINT closes at once with 1001 and exits 0', async () => {
    gateway = await spawnGateway({ env: { TIDINGS_SHUTDOWN_DRAIN_MS: '10000' } });
    const s = await connectSocket(gateway.clientUrl);
    sockets.push(s);
    const t0 = Date.now();
    expect(await gateway.stop('SIGINT')).toBe(0);
    expect((await s.closed).code).toBe(1001);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});
