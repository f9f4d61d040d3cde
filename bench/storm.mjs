#!/usr/bin/env node
/**
 * Reconnect storm (`npm run bench -- --scenario storm`): three gateways on a private Redis
 * behind HAProxy (the repository's deploy/haproxy-config.cjs), as many client sockets as the
 * descriptor limits allow (HAProxy holds two per socket), publishes through HAProxy's admin
 * port, then `kill -9` of one gateway. Its clients (@tidings/client's TidingsClient, which
 * reconnects and replays as Phorge's JX.Aphlict does) come back through HAProxy to the
 * survivors and replay what they missed from the shared history. Prints how long until every
 * one of them is connected and has replayed, the survivors' delivery p99 during the storm
 * divided by their p99 before it (same run), and lost and duplicated deliveries.
 *
 * One round per reconnect policy in `--spread`: 0 is JX.Aphlict's (reconnect at once after a
 * connection that had opened); S > 0 spreads each client's first reconnect uniformly over
 * (0, S] ms (TidingsClient's `reconnect: {immediateAfterOpen: false, initialDelayMs: S,
 * jitter: 1}`), client jitter alone, no change to the gateway.
 *
 *   node bench/storm.mjs                              9,000 sockets; at 200 and 20 publishes/s, rounds at 0 and 10,000 ms
 *   node bench/storm.mjs --connections 3000 --rate 200 --spread 0
 *   node bench/storm.mjs --help
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readDeliveryLog } from './delivery-log.mjs';
import { haveHaproxy, startHaproxy } from './haproxy.mjs';
import { startWorker } from './load.mjs';
import { GATEWAY_MAIN, adminGet, machineLoad, openFileLimit, startGateway, startRedis } from './processes.mjs';
import { PacedPublisher } from './publisher.mjs';
import { createRandom, fmt, markdownTable, nowMicros, percentile, pickDistinct, sleep } from './stats.mjs';
import { EVENT } from './storm-events.mjs';

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string' },
    connections: { type: 'string' },
    rate: { type: 'string', default: '200,20' },
    workers: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '5' },
    before: { type: 'string', default: '20' },
    after: { type: 'string', default: '5' },
    spread: { type: 'string', default: '0,10000' },
    'max-recovery': { type: 'string', default: '120' },
    'check-interval': { type: 'string', default: '1000' },
    seed: { type: 'string', default: '42' },
    'worker-node-args': { type: 'string', default: '--max-semi-space-size=64 --single-threaded-gc' },
    help: { type: 'boolean', default: false },
  },
});

const PUBLISHER_SOCKETS = 32;
const limit = openFileLimit();
/** HAProxy holds two descriptors per proxied connection; keep room for its listeners, checks and the publisher's sockets. */
const haproxyRoom = Math.floor((limit - 400) / 2) - PUBLISHER_SOCKETS;

if (args.help) {
  console.log(`usage: node bench/storm.mjs [flags]   (npm run bench -- --scenario storm [flags] builds first)
  --connections N      client sockets through HAProxy (9000, at most ${haproxyRoom} with this open-file limit of ${limit})
  --rate LIST          publishes a second through HAProxy's admin port; one set of rounds per value (200,20)
  --workers W          client worker processes (3)
  --warmup S           seconds of publishing before the reference window (5)
  --before S           the reference window before the kill, seconds (20)
  --after S            publishing after every client has replayed, seconds (5)
  --spread LIST        one round per value (and rate): 0 = reconnect at once (JX.Aphlict), S = first
                       reconnect uniform over (0, S] ms (client jitter) (0,10000)
  --max-recovery S     give up waiting for the clients after S seconds (120)
  --check-interval MS  HAProxy health-check interval (1000, as deploy/haproxy-config.cjs)
  --seed N             PRNG seed (42)`);
  process.exit(0);
}

const num = (v) => Number(v);
const CONNECTIONS = args.connections === undefined ? Math.min(9_000, haproxyRoom) : num(args.connections);
const RATES = args.rate.split(',').map(Number);
const WORKERS = Math.max(1, num(args.workers));
const WARMUP = num(args.warmup);
const BEFORE = num(args.before);
const AFTER = num(args.after);
const MAX_RECOVERY = num(args['max-recovery']);
const SPREADS = args.spread.split(',').map(Number);
const SEED = num(args.seed);
const COMMAND = `npm run bench -- --scenario storm ${process.argv.slice(2).filter((a) => !/^--scenario(=|$)|^storm$/.test(a)).join(' ')}`.trim();

const line = (s = '') => console.log(s);
const running = [];

async function stopAll() {
  for (const p of running.splice(0).reverse()) await p.stop().catch(() => {});
}

/** Sorted keys: how many of `want` are missing from `got`, and how many of `got` repeat. */
function compare(want, got) {
  let lost = 0;
  let duplicates = 0;
  let extra = 0;
  let i = 0;
  let j = 0;
  while (i < want.length || j < got.length) {
    if (j > 0 && j < got.length && got[j] === got[j - 1]) {
      duplicates++;
      j++;
    } else if (j >= got.length || (i < want.length && want[i] < got[j])) {
      lost++;
      i++;
    } else if (i >= want.length || got[j] < want[i]) {
      extra++;
      j++;
    } else {
      i++;
      j++;
    }
  }
  return { lost, duplicates, extra };
}

const SEQ_BITS = 2 ** 22;

/** One round: a fresh cluster, the clients, publishing, the kill, and the figures. */
async function round(rate, spreadMs) {
  const policy = spreadMs === 0 ? 'at once (JX.Aphlict)' : `spread over ${fmt(spreadMs / 1000, 1)} s (client jitter)`;
  const reconnect = spreadMs === 0 ? {} : { immediateAfterOpen: false, initialDelayMs: spreadMs, jitter: 1 };
  line(`\n## Round: reconnect ${policy}; ${fmt(CONNECTIONS)} clients through HAProxy, 3 gateways on Redis, ${rate} publishes/s`);
  line(`  load: ${machineLoad()}`);
  const scratch = mkdtempSync(join(tmpdir(), 'tidings-storm-'));
  try {
    const redis = await startRedis();
    running.push(redis);
    const gateways = [];
    for (let i = 0; i < 3; i++) {
      const g = await startGateway({ name: `gw${i + 1}`, config: { redis: { url: redis.url } } });
      running.push(g);
      gateways.push(g);
    }
    const haproxy = await startHaproxy({ gateways, checkIntervalMs: num(args['check-interval']) });
    running.push(haproxy);
    const workers = Array.from({ length: WORKERS }, () => startWorker(args['worker-node-args'].split(' ').filter(Boolean), 'storm-worker.mjs'));
    running.push(...workers.map((w) => ({ stop: () => w.close() })));

    const random = createRandom(SEED);
    const plan = Array.from({ length: CONNECTIONS }, (_, id) => ({ id, phids: pickDistinct(random, CONNECTIONS, 3) }));
    const connectStarted = Date.now();
    const connected = await Promise.all(
      workers.map((w, k) =>
        w.ask({ type: 'connect', clients: plan.filter((c) => c.id % WORKERS === k), url: `${haproxy.clientUrl}/`, reconnect, concurrency: 50 }, 'connected', 600_000),
      ),
    );
    const failed = connected.reduce((n, c) => n + c.failed, 0);
    if (failed) throw new Error(`${failed} of ${CONNECTIONS} clients did not connect and subscribe`);
    await sleep(2_000);
    const held = await Promise.all(gateways.map(async (g) => JSON.parse((await adminGet(g, '/status/')).body)['clients.node.active']));
    line(`  connected and subscribed in ${Date.now() - connectStarted} ms; per gateway: ${held.join(', ')}`);

    const publisher = new PacedPublisher({
      targets: [{ port: haproxy.adminPort, via: -1 }],
      rate: rate,
      maxMessages: Math.ceil(rate * (WARMUP + BEFORE + MAX_RECOVERY + AFTER + 10)),
      phidCount: CONNECTIONS,
      seed: SEED ^ 0x5eed,
      maxSockets: PUBLISHER_SOCKETS,
    });
    const publishing = publisher.run(WARMUP + BEFORE + MAX_RECOVERY + AFTER + 10);
    await sleep((WARMUP + BEFORE) * 1000);

    const victim = gateways[0];
    const victimHeld = JSON.parse((await adminGet(victim, '/status/')).body)['clients.node.active'];
    const killAt = nowMicros();
    await victim.kill9();
    line(`  kill -9 ${victim.name} (pid ${victim.pid}), which held ${victimHeld} clients`);
    let progress = { lost: 0, replayed: 0 };
    const deadline = Date.now() + MAX_RECOVERY * 1000;
    while (Date.now() < deadline) {
      await sleep(250);
      const answers = await Promise.all(workers.map((w) => w.ask({ type: 'progress', since: killAt }, 'progress')));
      progress = answers.reduce((a, p) => ({ lost: a.lost + p.lost, replayed: a.replayed + p.replayed }), { lost: 0, replayed: 0 });
      if (progress.lost >= victimHeld && progress.replayed >= progress.lost) break;
    }
    const timedOut = !(progress.lost >= victimHeld && progress.replayed >= progress.lost);
    await sleep(AFTER * 1000);
    await publisher.stop();
    await publishing;
    await sleep(5_000); // drain

    // What the survivors say they did: replays served, history entries read and sent, warnings.
    const survivorStatus = await Promise.all(
      gateways.slice(1).map(async (g) => {
        const st = JSON.parse((await adminGet(g, '/status/')).body);
        return { name: g.name, replays: st['messages.replays'], read: st['replays.entriesRead'], sent: st['replays.entriesSent'], warnings: [...g.warningCounts] };
      }),
    );
    const replaysFailed = survivorStatus.reduce((n, st) => n + st.warnings.filter(([msg]) => msg.startsWith('replay failed')).reduce((a, [, c]) => a + c, 0), 0);
    for (const s of survivorStatus) {
      line(`  ${s.name}: ${fmt(s.replays)} replays served, ${fmt(s.read)} history entries read for them, ${fmt(s.sent)} sent`);
      for (const [msg, n] of s.warnings) line(`    log (warn/error) x${n}: ${msg}`);
    }
    const collected = await Promise.all(
      workers.map((w, k) => w.ask({ type: 'collect', wireFile: join(scratch, `wire${k}.bin`), appFile: join(scratch, `app${k}.bin`) }, 'collected', 120_000)),
    );
    const wire = workers.map((_, k) => readDeliveryLog(join(scratch, `wire${k}.bin`)));
    const app = workers.map((_, k) => readDeliveryLog(join(scratch, `app${k}.bin`)));
    const clients = collected.flatMap((c) => c.clients);
    await stopAll();
    return analyse({ rate, replaysFailed, spreadMs, policy, killAt, victimHeld, timedOut, publisher, plan, clients, wire, app, held });
  } finally {
    await stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Messages that came off the wire twice to one client. A client replays after it subscribed
 * on its new connection, so what was published in between comes live and again in the
 * replay, and what its old connection got before the kill comes again too: that overlap is
 * the protocol's (JX.Aphlict and the client drop it by uniqueID). Any other repeat, both
 * copies on one connection and neither inside that connection's replay (from its replay
 * command to the pong after it), the gateway sent twice: `unexplained`.
 */
function wireDuplicates(wire, clients) {
  const replayWindow = new Map();
  for (const c of clients) {
    for (const [type, at, gen] of c.events) {
      const key = c.id * 64 + Math.min(63, gen);
      if (type === EVENT.replayAsked) replayWindow.set(key, [at, Infinity]);
      if (type === EVENT.replayed && replayWindow.has(key)) replayWindow.get(key)[1] = at;
    }
  }
  const records = [];
  for (const l of wire) for (let i = 0; i < l.length; i++) records.push([l.who[i] * SEQ_BITS + l.seq[i], l.tag[i], l.at[i], l.who[i]]);
  records.sort((a, b) => a[0] - b[0] || a[2] - b[2]);
  let overlap = 0;
  let unexplained = 0;
  for (let i = 1; i < records.length; i++) {
    const [key, gen, at, who] = records[i];
    if (key !== records[i - 1][0]) continue;
    const window = replayWindow.get(who * 64 + Math.min(63, gen));
    const inReplay = (t) => window !== undefined && t >= window[0] && t <= window[1];
    if (gen !== records[i - 1][1] || inReplay(at) || inReplay(records[i - 1][2])) overlap++;
    else unexplained++;
  }
  return { overlap, unexplained };
}

function analyse({ rate, replaysFailed, spreadMs, policy, killAt, victimHeld, timedOut, publisher, plan, clients, wire, app, held }) {
  // Who was on the killed gateway: the clients whose connection closed after the kill.
  const recovery = [];
  const reconnectedAfter = [];
  let unrecovered = 0;
  let failedAttempts = 0;
  const survivors = new Set();
  const readyAt = new Map();
  for (const c of clients) {
    readyAt.set(c.id, c.events.find(([type, , gen]) => type === EVENT.ready && gen === 0)?.[1] ?? Infinity);
    const close = c.events.find(([type, at]) => type === EVENT.close && at >= killAt);
    if (!c.events.some(([type]) => type === EVENT.close)) {
      survivors.add(c.id);
      continue;
    }
    if (!close) continue;
    const [, , closedGen] = close;
    const opened = c.events.find(([type, , gen]) => type === EVENT.open && gen > closedGen);
    const replayed = c.events.find(([type, , gen]) => type === EVENT.replayed && gen > closedGen);
    if (!replayed) {
      unrecovered++;
      continue;
    }
    reconnectedAfter.push((opened[1] - killAt) / 1e6);
    recovery.push((replayed[1] - killAt) / 1e6);
    failedAttempts += replayed[2] - closedGen - 1;
  }
  const lostConnection = clients.length - survivors.size;
  const lastReplay = recovery.length ? Math.max(...recovery) : NaN;

  // Survivors' delivery latency before the kill and during the storm (kill to the last replay).
  const stormEnd = killAt + Math.max(1, Number.isFinite(lastReplay) ? lastReplay : 1) * 1e6;
  const beforeLat = [];
  const stormLat = [];
  for (const l of wire) {
    for (let i = 0; i < l.length; i++) {
      if (!survivors.has(l.who[i])) continue;
      const at = l.at[i];
      if (at >= killAt - BEFORE * 1e6 && at < killAt) beforeLat.push(l.latency[i]);
      else if (at >= killAt && at <= stormEnd) stormLat.push(l.latency[i]);
    }
  }
  const p99Before = percentile(beforeLat, 99) / 1000;
  const p99Storm = percentile(stormLat, 99) / 1000;

  // Owed: every acknowledged message addressed to a client's PHIDs, published after its
  // subscription was confirmed, once, to the application (after the client's de-duplication).
  const byPhid = new Map();
  for (let s = 1; s <= publisher.sent; s++) {
    if (publisher.status[s] !== 200) continue;
    for (const p of publisher.phidsOf(s)) {
      let list = byPhid.get(p);
      if (!list) byPhid.set(p, (list = []));
      list.push(s);
    }
  }
  const want = [];
  for (const c of plan) {
    const owed = new Set();
    for (const p of c.phids) for (const s of byPhid.get(p) ?? []) if (publisher.sentAt[s] >= readyAt.get(c.id)) owed.add(s);
    for (const s of owed) want.push(c.id * SEQ_BITS + s);
  }
  const keys = (logs, key) => {
    let n = 0;
    for (const l of logs) n += l.length;
    const out = new Float64Array(n);
    n = 0;
    for (const l of logs) for (let i = 0; i < l.length; i++) out[n++] = key(l, i);
    return out.sort();
  };
  const wantKeys = Float64Array.from(want).sort();
  const appKeys = keys(app, (l, i) => l.who[i] * SEQ_BITS + l.seq[i]);
  const appResult = compare(wantKeys, appKeys);
  // Positive control of the comparison: 100 deliveries taken out and one repeated must show.
  const tampered = Float64Array.from([...appKeys.subarray(100), appKeys[100]]).sort();
  const control = compare(wantKeys, tampered);
  const controlOk = control.lost === appResult.lost + 100 && control.duplicates === appResult.duplicates + 1;
  const { unexplained: withinConnection, overlap: acrossReconnects } = wireDuplicates(wire, clients);
  const clientDropped = clients.reduce((n, c) => n + c.stats.duplicates, 0);
  const outcome = publisher.outcome();

  const r = {
    rate,
    replaysFailed,
    spreadMs,
    policy,
    held,
    victimHeld,
    lostConnection,
    recovered: recovery.length,
    unrecovered,
    timedOut,
    allReconnected: Math.max(...reconnectedAfter),
    allReplayed: lastReplay,
    replayP50: percentile(recovery, 50),
    replayP99: percentile(recovery, 99),
    failedAttempts,
    p99Before,
    p99Storm,
    ratio: p99Storm / p99Before,
    beforeCount: beforeLat.length,
    stormCount: stormLat.length,
    stormSeconds: (stormEnd - killAt) / 1e6,
    owed: want.length,
    lost: appResult.lost,
    duplicates: appResult.duplicates,
    withinConnection,
    acrossReconnects,
    clientDropped,
    outcome,
    controlOk,
  };
  line(`  ${lostConnection} clients lost their connection (the killed gateway held ${victimHeld}); ${r.recovered} reconnected to a survivor and replayed, ${unrecovered} did not${timedOut ? ` within ${MAX_RECOVERY} s` : ''}`);
  line(`  every one reconnected ${fmt(r.allReconnected, 2)} s and had its replay answered ${fmt(r.allReplayed, 2)} s after the kill (the pong after the replay: p50 ${fmt(r.replayP50, 2)} s, p99 ${fmt(r.replayP99, 2)} s); ${failedAttempts} failed attempts before that`);
  line(`  survivors' delivery p99: ${fmt(p99Before, 2)} ms in the ${BEFORE} s before the kill (${fmt(r.beforeCount)} deliveries), ${fmt(p99Storm, 2)} ms during the storm (${fmt(r.stormSeconds, 1)} s, ${fmt(r.stormCount)} deliveries): x${fmt(r.ratio, 2)}`);
  line(`  published ${fmt(outcome.sent)} through HAProxy: ${fmt(outcome.acknowledged)} acknowledged, ${outcome.unacknowledged} not, ${outcome.retries} retries (${Object.entries(outcome.failuresByStatus).map(([k, v]) => `${k === '-1' ? 'connection error' : `HTTP ${k}`}: ${v}`).join(', ') || 'none failed'})`);
  line(`  owed ${fmt(r.owed)} deliveries: lost ${r.lost}, duplicated to the application ${r.duplicates}; on the wire, repeats the replay explains (after a reconnect, or inside the new connection's replay; the client drops them by uniqueID) ${acrossReconnects} (the clients counted ${clientDropped}), repeats it does not ${withinConnection}`);
  return r;
}

async function main() {
  line(`Tidings reconnect storm: node ${process.version}, open-file limit ${limit} (HAProxy: two per socket, room for ${fmt(haproxyRoom)} sockets)`);
  line(`command: ${COMMAND}`);
  line(`started ${new Date().toISOString()}; load: ${machineLoad()}`);
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build first`);
  if (!haveHaproxy()) throw new Error('haproxy is not on the PATH (Debian package haproxy)');
  if (CONNECTIONS > haproxyRoom) throw new Error(`${CONNECTIONS} sockets need ${2 * CONNECTIONS + 400} descriptors in HAProxy; the limit is ${limit} ('ulimit -n')`);
  const results = [];
  for (const rate of RATES) for (const spread of SPREADS) results.push(await round(rate, spread));
  line(`\n# Summary (${COMMAND}), finished ${new Date().toISOString()}; load: ${machineLoad()}\n`);
  line(
    markdownTable(
      ['publishes/s', 'reconnect', 'clients of the killed gateway', 'all reconnected s', 'all replays answered s', 'replay answered p50 / p99 s', 'failed attempts', 'replays failed', 'survivors p99 before / during ms', 'ratio', 'lost / dup'],
      results.map((r) => [
        fmt(r.rate),
        r.policy,
        `${fmt(r.lostConnection)} (held ${fmt(r.victimHeld)})`,
        fmt(r.allReconnected, 2),
        fmt(r.allReplayed, 2),
        `${fmt(r.replayP50, 2)} / ${fmt(r.replayP99, 2)}`,
        fmt(r.failedAttempts),
        fmt(r.replaysFailed),
        `${fmt(r.p99Before, 2)} / ${fmt(r.p99Storm, 2)}`,
        `x${fmt(r.ratio, 2)}`,
        `${r.lost} / ${r.duplicates + r.withinConnection}`,
      ]),
    ),
  );
  line('\n# Goals');
  for (const result of results) {
    const r = { ...result, policy: `${fmt(result.rate)}/s, reconnect ${result.policy}` };
    line(`${r.unrecovered === 0 && !r.timedOut ? 'PASS' : 'FAIL'}  ${r.policy}: every client of the killed gateway reconnected and had its replay answered: ${r.recovered} of ${r.lostConnection}, the last ${fmt(r.allReplayed, 2)} s after the kill`);
    line(`${r.lost === 0 && r.outcome.unacknowledged === 0 ? 'PASS' : 'FAIL'}  ${r.policy}: 0 lost: ${r.lost} of ${fmt(r.owed)} (${r.outcome.unacknowledged} publishes unacknowledged)`);
    line(`${r.duplicates === 0 && r.withinConnection === 0 ? 'PASS' : 'FAIL'}  ${r.policy}: 0 duplicated: ${r.duplicates} to the application, ${r.withinConnection} sent twice on one connection outside its replay`);
    line(`${r.controlOk ? 'PASS' : 'FAIL'}  ${r.policy}: the check sees 100 deliveries taken out and 1 repeated (positive control)`);
  }
  for (const rate of RATES) {
    const [first, ...rest] = results.filter((r) => r.rate === rate);
    for (const r of rest) {
      line(`at ${rate} publishes/s, survivors' p99 ratio: x${fmt(first.ratio, 2)} reconnecting ${first.policy}, x${fmt(r.ratio, 2)} ${r.policy}; lost ${first.lost} and ${r.lost}; the last client's replay answered after ${fmt(first.allReplayed, 2)} s and ${fmt(r.allReplayed, 2)} s`);
    }
  }
}

process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.on('SIGTERM', () => void stopAll().then(() => process.exit(143)));

main().catch(async (err) => {
  console.error(`storm failed: ${err.stack ?? err.message}`);
  await stopAll();
  process.exitCode = 1;
});
