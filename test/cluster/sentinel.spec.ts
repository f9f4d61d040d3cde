/**
 * Redis Sentinel failover under load: a master, one replica and three sentinels (quorum 2,
 * down-after 1 s), three gateways configured with redis.sentinels, raw sockets on every
 * gateway, publishes at 50/s round robin while the master gets kill -9.
 *
 * - redis.waitReplicas 1: every message acknowledged (200) reaches every socket once (live,
 *   or from the backfill a node runs when its bus is back) and is in the promoted master's
 *   history (a replay on a fresh socket returns it); every gateway follows the new master
 *   without a restart: it refuses with the WAIT reason while the new master has no replica
 *   (and stays ready), acknowledges again once the old master rejoined as a replica.
 * - Without waitReplicas: the gateways follow the new master just the same; what was
 *   acknowledged but is missing from history or sockets is counted and printed (the figure
 *   in README.md, "Redis Sentinel").
 */
import { getStatus, sleep, startSentinelTopology, type GatewayProcess, type SentinelTopology, type TestSocket } from '@tidings/testing';
import { deliveryFaults, keysOf, publishSteadily, startBusNodes, subscribedSocket, uniquePrefix, type SteadyPublisher } from '../support/redis-cluster';

const PHID = 'PHID-USER-sentinel';

let topology: SentinelTopology | undefined;
let nodes: GatewayProcess[] = [];
let sockets: TestSocket[] = [];

afterEach(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.kill()));
  await topology?.stop();
  sockets = [];
  nodes = [];
  topology = undefined;
});

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve(check()).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what()} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

const readyz = async (node: GatewayProcess) => (await fetch(`${node.adminUrl}/readyz`)).status;

/** Publishes answered 200 by node `i` after `since`. */
const ackedBy = (publisher: SteadyPublisher, i: number, since: number) => publisher.results.filter((r) => r.node === i && r.status === 200 && r.at > since).length;

/** Log lines where a node refused a publish because no replica confirmed it (WAIT). */
const waitRefusals = (node: GatewayProcess) =>
  node.logs.filter((l) => l.msg === 'publish not acknowledged: history unavailable' && /replicas confirmed the write/.test(String(l.err)));

interface FailoverRun {
  publisher: SteadyPublisher;
  killedAt: number;
  promotedAt: number;
  /** When every gateway had acknowledged a publish again. */
  recoveredAt: number;
}

/**
 * Starts the topology and three gateways, subscribes two sockets per gateway, publishes at
 * 50/s and kills the master with SIGKILL 1.5 s in. `beforeRecovery` runs once the sentinels
 * named the new master; the run ends 1 s after every gateway acknowledged again.
 */
async function failoverUnderLoad(waitReplicas: number, beforeRecovery: (oldMaster: number) => Promise<void>): Promise<FailoverRun> {
  topology = await startSentinelTopology({ downAfterMs: 1_000, failoverTimeoutMs: 5_000 });
  nodes = await startBusNodes(3, {
    redis: {
      sentinels: topology.sentinels,
      sentinelName: topology.masterName,
      keyPrefix: uniquePrefix(`sentinel-${waitReplicas}`),
      commandTimeoutMs: 500,
      waitReplicas,
    },
  });
  for (const node of nodes) for (let i = 0; i < 2; i++) sockets.push(await subscribedSocket(node.clientUrl, [PHID]));
  await until(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200), 10_000, () => 'every gateway ready');

  const publisher = publishSteadily({ nodes: () => nodes, phids: [PHID], ratePerSec: 50, max: 1_500, maxMs: 30_000 });
  try {
    await sleep(1_500);
    const oldMaster = await topology.masterPort();
    const killedAt = Date.now();
    await topology.servers.get(oldMaster)!.kill();
    await topology.waitForFailover(oldMaster, 15_000);
    const promotedAt = Date.now();
    await beforeRecovery(oldMaster);
    const since = Date.now();
    await until(() => nodes.every((_, i) => ackedBy(publisher, i, since) > 0), 15_000, () => `every gateway acknowledging again (${nodes.map((_, i) => ackedBy(publisher, i, since))})`);
    const recoveredAt = Math.max(...nodes.map((_, i) => publisher.results.find((r) => r.node === i && r.status === 200 && r.at > since)!.at));
    await sleep(1_000);
    return { publisher, killedAt, promotedAt, recoveredAt };
  } finally {
    await publisher.stop();
  }
}

/** A fresh socket on each gateway asks for replay: what shared history holds, as each gateway reads it. */
async function replayedKeys(): Promise<string[][]> {
  const out: string[][] = [];
  for (const node of nodes) {
    const s = await subscribedSocket(node.clientUrl, [PHID]);
    sockets.push(s);
    s.send('replay', { age: 60_000 });
    await s.roundTrip(); // a raw socket handles its frames in order: the replay is sent before the pong
    out.push(keysOf(s));
  }
  return out;
}

async function expectEveryGatewayServing(): Promise<void> {
  await until(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200), 10_000, () => 'every gateway ready again');
  await until(
    async () => {
      const statuses = await Promise.all(nodes.map((n) => getStatus(n.adminUrl)));
      return statuses.every((s) => JSON.stringify((s.socketio as { redis?: unknown }).redis) === '{"pub":"ready","sub":"ready"}');
    },
    10_000,
    () => "every gateway's Socket.IO adapter connected to the new master",
  );
  for (const n of nodes) expect(n.child.exitCode).toBeNull();
}

describe('redis sentinel - kill -9 of the master while publishing', () => {
  it('with redis.waitReplicas 1: every acknowledged message on every socket once and in history; every gateway follows the new master', async () => {
    const run = await failoverUnderLoad(1, async (oldMaster) => {
      // The promoted master has no replica yet: every gateway reaches it and refuses with the
      // WAIT reason (a positive control: waitReplicas is in force), then the old one rejoins.
      await until(() => nodes.every((n) => waitRefusals(n).length > 0), 10_000, () => `a WAIT refusal on every gateway (${nodes.map((n) => waitRefusals(n).length)})`);
      // Appends wait on a connection of their own: the bus and its canary are not held behind
      // a WAIT, so the gateways are ready meanwhile.
      await until(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200), 10_000, () => 'every gateway ready while WAIT refuses');
      await topology!.rejoinAsReplica(oldMaster);
    });
    const { acked, failed } = run.publisher;
    const ackedBefore = run.publisher.results.filter((r) => r.status === 200 && r.at < run.killedAt).length;
    expect(ackedBefore).toBeGreaterThan(30);
    expect(acked.length).toBeGreaterThan(ackedBefore + 30);
    expect(failed.length).toBeGreaterThan(0);
    // Refused, fast, never left without an answer.
    expect(failed.filter((f) => f.status !== 503)).toEqual([]);

    for (const [i, s] of sockets.entries()) {
      await s
        .waitFor(() => acked.every((k) => keysOf(s).includes(k)), 15_000, 'every acknowledged message')
        .catch(() => {
          throw new Error(`socket ${i} (gateway ${Math.floor(i / 2)}) lacks ${deliveryFaults(keysOf(s), acked).missing.join(', ')}`);
        });
    }
    await sleep(300);
    await Promise.all(sockets.map((s) => s.roundTrip()));
    for (const s of sockets) expect(deliveryFaults(keysOf(s), acked)).toEqual({ missing: [], duplicates: [] });

    // Shared history on the promoted master holds every acknowledged message, once.
    for (const replayed of await replayedKeys()) expect(deliveryFaults(replayed, acked)).toEqual({ missing: [], duplicates: [] });
    await expectEveryGatewayServing();
    for (const n of nodes) expect(n.logs.map((l) => l.msg)).toContain('bus: connected again');
    process.stdout.write(
      `sentinel failover (waitReplicas 1): ${acked.length} acknowledged, ${failed.length} refused (503); promoted ${run.promotedAt - run.killedAt} ms after kill -9, every gateway acknowledging ${run.recoveredAt - run.killedAt} ms after (old master rejoined as a replica in between)\n`,
    );
  }, 60_000);

  it('without redis.waitReplicas: every gateway follows the new master; acknowledged messages lost are counted', async () => {
    const run = await failoverUnderLoad(0, async () => undefined);
    const { acked, failed } = run.publisher;
    expect(acked.length).toBeGreaterThan(100);
    expect(failed.filter((f) => f.status !== 503)).toEqual([]);

    // Lost: acknowledged, yet missing from the promoted master's history (no replay returns
    // it) or from a socket that stayed connected. Sockets get time to catch up first.
    await Promise.all(sockets.map((s) => s.waitFor(() => acked.every((k) => keysOf(s).includes(k)), 5_000).catch(() => undefined)));
    await Promise.all(sockets.map((s) => s.roundTrip()));
    const missingOnSockets = sockets.map((s) => deliveryFaults(keysOf(s), acked).missing.length);
    const replays = await replayedKeys();
    const missingFromHistory = replays.map((r) => deliveryFaults(r, acked).missing);
    // Every gateway reads the same history.
    for (const m of missingFromHistory) expect(m).toEqual(missingFromHistory[0]);
    // Positive control: the count finds a message that is not there.
    expect(deliveryFaults(replays[0], [...acked, 'never-published']).missing).toContain('never-published');
    for (const s of sockets) expect(deliveryFaults(keysOf(s), acked).duplicates).toEqual([]);
    await expectEveryGatewayServing();
    const ackedInLastSecond = run.publisher.results.filter((r) => r.status === 200 && r.at <= run.killedAt && r.at > run.killedAt - 1_000).length;
    process.stdout.write(
      `sentinel failover (waitReplicas 0): ${acked.length} acknowledged (${ackedInLastSecond} in the second before kill -9), ${failed.length} refused (503); ` +
        `lost from history ${missingFromHistory[0].length} [${missingFromHistory[0].join(' ')}], missing on sockets ${missingOnSockets.join('/')}; ` +
        `promoted ${run.promotedAt - run.killedAt} ms after kill -9, every gateway acknowledging ${run.recoveredAt - run.killedAt} ms after\n`,
    );
  }, 60_000);
});
