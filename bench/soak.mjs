#!/usr/bin/env node
/**
 * Soak (`npm run soak -- --minutes 10`, which builds first): two gateways on a private Redis,
 * 5,000 raw sockets of which half stay connected and half churn (50 closes and 50 new
 * connections a second, the count steady), 200 publishes a second addressed as in
 * bench/run.mjs (5 random PHIDs of 5,000; each socket listens to 3). Every 5 s it samples
 * each gateway's RSS (/proc), V8 heap used and event-loop lag p99 (its /metrics), open
 * descriptors (/proc/PID/fd) and connections (/status/), and writes a CSV and an SVG plot.
 * It ends with lost and duplicate deliveries (for the sockets that stayed, and for the churned
 * ones: what they should have got while connected) and each gateway's RSS slope after the
 * first minute, with a judgement of whether it is distinguishable from zero.
 *
 *   node bench/soak.mjs --minutes 10
 *   node bench/soak.mjs --minutes 2 --connections 1000 --churn 10     a short look
 *   node bench/soak.mjs --help
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readDeliveryLog } from './delivery-log.mjs';
import { startWorker } from './load.mjs';
import { GATEWAY_MAIN, adminGet, machineLoad, openFdCount, openFileLimit, parseMetrics, rssBytes, rssParts, startGateway, startRedis } from './processes.mjs';
import { PacedPublisher } from './publisher.mjs';
import { createRandom, fmt, percentile, pickDistinct, sleep } from './stats.mjs';
import { lineChartSvg } from './svg-chart.mjs';
import { judgeSlope, slopeWithError } from './trend.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Bench-only preload: SIGUSR2 runs full collections in a gateway (the live heap, twice a run). */
const GC_PRELOAD = join(ROOT, 'bench', 'gc-on-signal.cjs');
const MiB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    connections: { type: 'string', default: '5000' },
    stable: { type: 'string' },
    churn: { type: 'string', default: '50' },
    rate: { type: 'string', default: '200' },
    workers: { type: 'string', default: '2' },
    'sample-seconds': { type: 'string', default: '5' },
    'margin-ms': { type: 'string', default: '1000' },
    'slope-bound': { type: 'string', default: '1' },
    'skip-minutes': { type: 'string', default: '1' },
    seed: { type: 'string', default: '42' },
    out: { type: 'string' },
    'worker-node-args': { type: 'string', default: '--max-semi-space-size=64 --single-threaded-gc' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: node bench/soak.mjs [flags]   (npm run soak -- [flags] builds first)
  --minutes M          publishing and churn last M minutes (10)
  --connections N      sockets, spread over 2 gateways (5000); PHIDs in the pool: N
  --stable S           of them never closed by the bench (N/2); the others churn
  --churn C            closes a second, each followed at once by a new connection (50)
  --rate R             publishes a second, round robin over the gateways (200)
  --workers W          client worker processes (2)
  --sample-seconds S   sampling interval (5)
  --margin-ms MS       a churned socket is owed a message acknowledged at least MS before
                       it closed, and published after its subscription was confirmed (1000)
  --skip-minutes M     the RSS slope is fitted after the first M minutes (1)
  --slope-bound B      |slope| under B MiB/min is part of "indistinguishable from zero" (1)
  --out DIR            results directory (bench/results/soak-<UTC time>)
  --seed N             PRNG seed (42)`);
  process.exit(0);
}

const num = (v) => Number(v);
const MINUTES = num(args.minutes);
const CONNECTIONS = num(args.connections);
const STABLE = args.stable === undefined ? Math.floor(CONNECTIONS / 2) : num(args.stable);
const CHURN = num(args.churn);
const RATE = num(args.rate);
const WORKERS = Math.max(1, num(args.workers));
const SAMPLE_MS = num(args['sample-seconds']) * 1000;
const MARGIN_US = num(args['margin-ms']) * 1000;
const SEED = num(args.seed);
const NODES = 2;
const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
const OUT = resolve(args.out ?? join(ROOT, 'bench', 'results', `soak-${stamp}`));
const COMMAND = `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim();

const started = [];
const line = (s = '') => console.log(s);

/** One sample of every gateway (and Redis), and the deliveries since the last sample. */
async function sample(t0, gateways, redis, workers) {
  const row = { t: (performance.now() - t0) / 1000 };
  await Promise.all(
    gateways.map(async (g, i) => {
      row[`g${i}_rss_mib`] = rssBytes(g.pid) / MiB;
      const parts = rssParts(g.pid);
      row[`g${i}_rss_anon_mib`] = parts.anon / MiB;
      row[`g${i}_rss_file_mib`] = parts.file / MiB;
      row[`g${i}_fds`] = openFdCount(g.pid);
      try {
        const metrics = parseMetrics((await adminGet(g, '/metrics')).body);
        row[`g${i}_heap_mib`] = metrics.get('nodejs_heap_size_used_bytes') / MiB;
        row[`g${i}_heap_total_mib`] = metrics.get('nodejs_heap_size_total_bytes') / MiB;
        row[`g${i}_external_mib`] = metrics.get('nodejs_external_memory_bytes') / MiB;
        // prom-client's histogram (monitorEventLoopDelay, reset at each scrape) records whole
        // timer intervals: the 10 ms sampling interval itself is taken off.
        row[`g${i}_lag_p99_ms`] = Math.max(0, metrics.get('nodejs_eventloop_lag_p99_seconds') * 1000 - 10);
        const status = JSON.parse((await adminGet(g, '/status/')).body);
        row[`g${i}_connections`] = status['clients.node.active'];
        row[`g${i}_slow_reader_closes`] = status['clients.slowReaderCloses'];
      } catch (err) {
        row[`g${i}_error`] = err.message;
      }
    }),
  );
  row.redis_rss_mib = rssBytes(redis.pid) / MiB;
  const windows = await Promise.all(workers.map((w) => w.ask({ type: 'window' }, 'window')));
  const lat = windows.flatMap((w) => w.latencies);
  row.deliveries = lat.length;
  row.delivery_p99_ms = lat.length ? percentile(lat, 99) / 1000 : NaN;
  row.live_sockets = windows.reduce((n, w) => n + w.live, 0);
  row.churn_closes = windows.reduce((n, w) => n + w.churnCloses, 0);
  row.unexpected_closes = windows.reduce((n, w) => n + w.unexpectedCloses, 0);
  row.connect_failures = windows.reduce((n, w) => n + w.connectFailures, 0);
  row.load1 = loadavg()[0];
  return row;
}

/**
 * Who should have received what, against what each connection received. A connection is owed
 * every acknowledged message addressed to one of its PHIDs that was published after its
 * subscription was confirmed and, if it closed, acknowledged at least the margin before the
 * close began (the bench closes churned sockets; a stable one closed by the server is owed
 * the same up to that close, and counted as an unexpected close). Messages outside those
 * windows may arrive or not; they count as neither lost nor extra.
 */
function audit(publisher, incarnations, logs) {
  const k = publisher.k;
  const byPhid = new Map();
  for (let s = 1; s <= publisher.sent; s++) {
    if (publisher.status[s] !== 200) continue;
    for (const p of publisher.phidsOf(s)) {
      let list = byPhid.get(p);
      if (!list) byPhid.set(p, (list = []));
      list.push(s);
    }
  }
  const SHIFT = 2 ** 22;
  const incById = new Map(incarnations.map((i) => [i.id, i]));
  const expected = [];
  for (const inc of incarnations) {
    if (!inc.readyAt) continue;
    const owed = new Set();
    for (const p of inc.phids) {
      for (const s of byPhid.get(p) ?? []) {
        if (publisher.sentAt[s] < inc.readyAt) continue;
        if (inc.closeAt && publisher.answeredAt[s] > inc.closeAt - MARGIN_US) continue;
        owed.add(s);
      }
    }
    for (const s of owed) expected.push(inc.id * SHIFT + s);
  }
  const exp = Float64Array.from(expected).sort();
  let total = 0;
  for (const l of logs) total += l.length;
  const got = new Float64Array(total);
  let n = 0;
  for (const l of logs) for (let i = 0; i < l.length; i++) got[n++] = l.who[i] * SHIFT + l.seq[i];
  got.sort();
  const tally = () => ({ owed: 0, lost: 0, duplicates: 0, misdelivered: 0, outsideWindow: 0 });
  const result = { stable: tally(), churned: tally() };
  const side = (key) => (incById.get(Math.floor(key / SHIFT))?.churn ? result.churned : result.stable);
  for (const key of exp) side(key).owed++;
  let i = 0;
  let j = 0;
  while (i < exp.length || j < got.length) {
    if (j < got.length && j > 0 && got[j] === got[j - 1]) {
      side(got[j]).duplicates++;
      j++;
    } else if (j >= got.length || (i < exp.length && exp[i] < got[j])) {
      side(exp[i]).lost++;
      i++;
    } else if (i >= exp.length || got[j] < exp[i]) {
      // Received but not owed: outside the connection's window, or not addressed to it at all.
      const key = got[j];
      const inc = incById.get(Math.floor(key / SHIFT));
      const seq = key % SHIFT;
      const addressed = inc && [...publisher.phids.subarray(seq * k, seq * k + k)].some((p) => inc.phids.includes(p));
      if (addressed) side(key).outsideWindow++;
      else side(key).misdelivered++;
      j++;
    } else {
      i++;
      j++;
    }
  }
  return result;
}

/** A copy of a log without its first `drop` deliveries to stable sockets, and with one of them twice. */
function tampered(log, incarnations, drop) {
  const stable = new Set(incarnations.filter((i) => !i.churn).map((i) => i.id));
  const who = [];
  const seq = [];
  let dropped = 0;
  for (let i = 0; i < log.length; i++) {
    if (dropped < drop && stable.has(log.who[i])) {
      dropped++;
      continue;
    }
    who.push(log.who[i]);
    seq.push(log.seq[i]);
  }
  const again = who.findIndex((w) => stable.has(w));
  who.push(who[again]);
  seq.push(seq[again]);
  return { length: who.length, who, seq };
}

/**
 * The live heap: V8 heap used right after full collections (gc-on-signal.cjs), in MiB. Heap
 * used as sampled carries whatever garbage is uncollected then; this does not.
 */
async function liveHeap(g) {
  const majors = async () => {
    const text = (await adminGet(g, '/metrics')).body;
    return Number(/nodejs_gc_duration_seconds_count\{[^}]*kind="major"[^}]*\} (\d+)/.exec(text)?.[1] ?? NaN);
  };
  const before = await majors();
  process.kill(g.pid, 'SIGUSR2');
  // prom-client's observer records the preload's two back-to-back collections as one or two.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await sleep(200);
    if (!((await majors()) < before + 1)) break;
  }
  await sleep(200);
  return parseMetrics((await adminGet(g, '/metrics')).body).get('nodejs_heap_size_used_bytes') / MiB;
}

async function main() {
  line(`Tidings soak: node ${process.version}, ${NODES} gateways on Redis, ${fmt(CONNECTIONS)} sockets (${fmt(STABLE)} stable, ${fmt(CONNECTIONS - STABLE)} churning at ${CHURN} closes + ${CHURN} connects a second), ${RATE} publishes/s, ${MINUTES} min`);
  line(`command: ${COMMAND}`);
  line(`started ${new Date().toISOString()}; load: ${machineLoad()}`);
  const limit = openFileLimit();
  if (limit < CONNECTIONS / WORKERS + 1_000) throw new Error(`open-file limit ${limit} is too low for ${CONNECTIONS} sockets over ${WORKERS} workers`);
  mkdirSync(OUT, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), 'tidings-soak-'));

  const redis = await startRedis();
  started.push(redis);
  const gateways = [];
  for (let i = 0; i < NODES; i++) {
    const g = await startGateway({ name: `gateway${i}`, config: { redis: { url: redis.url } }, nodeArgs: ['--expose-gc', '--require', GC_PRELOAD] });
    started.push(g);
    gateways.push(g);
  }
  const workers = Array.from({ length: WORKERS }, () => startWorker(args['worker-node-args'].split(' ').filter(Boolean), 'soak-worker.mjs'));
  started.push(...workers.map((w) => ({ stop: () => w.close() })));

  // Slot i listens to 3 of N PHIDs on gateway i mod 2; slots from STABLE on churn.
  const random = createRandom(SEED);
  const slots = Array.from({ length: CONNECTIONS }, (_, slot) => ({
    slot,
    url: `ws://127.0.0.1:${gateways[slot % NODES].clientPort}/~default/`,
    phids: pickDistinct(random, CONNECTIONS, 3),
    churn: slot >= STABLE,
  }));
  const shares = workers.map(() => []);
  slots.forEach((s) => shares[Math.floor(s.slot / NODES) % WORKERS].push(s));
  const connectStarted = Date.now();
  const connected = await Promise.all(workers.map((w, i) => w.ask({ type: 'connect', worker: i, sockets: shares[i], concurrency: 50 }, 'connected', 300_000)));
  const failed = connected.reduce((n, c) => n + c.failed, 0);
  if (failed) throw new Error(`${failed} of ${CONNECTIONS} sockets failed to connect`);
  line(`connected and subscribed ${fmt(CONNECTIONS)} sockets in ${Date.now() - connectStarted} ms`);
  await sleep(2_000);

  const publisher = new PacedPublisher({
    targets: gateways.map((g, i) => ({ port: g.adminPort, via: i })),
    rate: RATE,
    maxMessages: Math.ceil(RATE * MINUTES * 60) + 10,
    phidCount: CONNECTIONS,
    seed: SEED ^ 0x5eed,
  });
  const rows = [];
  const t0 = performance.now();
  rows.push(await sample(t0, gateways, redis, workers));
  await Promise.all(
    workers.map((w, i) =>
      w.ask({ type: 'churn', perSecond: CHURN / WORKERS, slots: shares[i].filter((s) => s.churn).map(({ slot, url }) => ({ slot, url })), phidCount: CONNECTIONS, seed: SEED + 1000 + i }, 'churning'),
    ),
  );
  const publishing = publisher.run(MINUTES * 60);
  line('\n   t | ' + gateways.map((_, i) => `g${i} RSS MiB  heap MiB  lag p99 ms  fds  conns`).join(' | ') + ' | delivery p99 ms  load');
  let nextPrint = 0;
  let next = SAMPLE_MS;
  // The live heap twice, under the same load: once the gateways' id ledger (2 x the history
  // window + 10 s = 130 s) is full, at minute 3, and in the last sampling interval.
  const liveAt = [Math.min(180, MINUTES * 30), MINUTES * 60 - SAMPLE_MS / 1000];
  const live = [];
  while (performance.now() - t0 < MINUTES * 60_000) {
    await sleep(Math.max(0, t0 + next - performance.now()));
    next += SAMPLE_MS;
    const row = await sample(t0, gateways, redis, workers);
    rows.push(row);
    if (live.length < liveAt.length && row.t >= liveAt[live.length]) {
      live.push({ t: row.t, mib: await Promise.all(gateways.map(liveHeap)) });
      live[live.length - 1].mib.forEach((mib, i) => (row[`g${i}_live_heap_mib`] = mib));
    }
    if (row.t >= nextPrint) {
      nextPrint += 30;
      const g = gateways
        .map((_, i) => `${fmt(row[`g${i}_rss_mib`], 1).padStart(11)} ${fmt(row[`g${i}_heap_mib`], 1).padStart(9)} ${fmt(row[`g${i}_lag_p99_ms`], 2).padStart(11)} ${String(row[`g${i}_fds`]).padStart(4)} ${String(row[`g${i}_connections`]).padStart(6)}`)
        .join(' | ');
      line(`${String(Math.round(row.t)).padStart(4)} | ${g} | ${fmt(row.delivery_p99_ms, 2).padStart(15)}  ${fmt(row.load1, 1)}`);
    }
  }
  await Promise.all(workers.map((w) => w.ask({ type: 'stop-churn' }, 'churn-stopped', 60_000)));
  await publishing;
  await sleep(5_000); // drain: what has not arrived 5 s after the last acknowledgement is lost
  rows.push(await sample(t0, gateways, redis, workers));

  // What every connection received, against what it was owed.
  const collected = await Promise.all(workers.map((w, i) => w.ask({ type: 'collect', file: join(scratch, `worker${i}.bin`) }, 'collected', 120_000)));
  const logs = workers.map((_, i) => readDeliveryLog(join(scratch, `worker${i}.bin`)));
  const incarnations = collected.flatMap((c) =>
    c.incarnations.map(([id, slot, churn, p0, p1, p2, readyAt, closeAt, closedBy]) => ({ id, slot, churn: churn === 1, phids: [p0, p1, p2], readyAt, closeAt, closedBy })),
  );
  const result = audit(publisher, incarnations, logs);
  // Positive control of the audit itself: the same records with 100 deliveries to stable
  // sockets taken out and one repeated must show exactly 100 more lost and 1 more duplicate.
  const control = audit(publisher, incarnations, [tampered(logs[0], incarnations, 100), ...logs.slice(1)]);
  const controlOk = control.stable.lost === result.stable.lost + 100 && control.stable.duplicates === result.stable.duplicates + 1;
  const published = publisher.outcome();
  const allLat = [];
  for (const l of logs) for (let i = 0; i < l.length; i++) allLat.push(l.latency[i]);
  const churnedConnections = incarnations.filter((i) => i.churn).length;
  const unexpectedCloses = collected.reduce((n, c) => n + c.unexpectedCloses, 0);
  const connectFailures = collected.reduce((n, c) => n + c.connectFailures, 0);

  // RSS and heap slopes after the first minute(s), per gateway.
  const skip = num(args['skip-minutes']);
  const bound = num(args['slope-bound']);
  const fits = gateways.map((_, i) => {
    const after = rows.filter((r) => r.t / 60 >= skip && Number.isFinite(r[`g${i}_rss_mib`]));
    const xs = after.map((r) => r.t / 60);
    const rss = slopeWithError(xs, after.map((r) => r[`g${i}_rss_mib`]));
    const heap = slopeWithError(xs, after.map((r) => r[`g${i}_heap_mib`]));
    const parts = Object.fromEntries(['rss_anon_mib', 'rss_file_mib', 'heap_total_mib', 'external_mib'].map((k) => [k, slopeWithError(xs, after.map((r) => r[`g${i}_${k}`]))]));
    // The same fit over each third of the span after the skip: a leak keeps its slope, a process settling into its steady state does not.
    const span = (MINUTES - skip) / 3;
    const thirds = [0, 1, 2].map((k) => {
      const part = after.filter((r) => r.t / 60 >= skip + k * span && r.t / 60 < skip + (k + 1) * span);
      return slopeWithError(part.map((r) => r.t / 60), part.map((r) => r[`g${i}_rss_mib`]));
    });
    return { rss, heap, parts, thirds, rssJudgement: judgeSlope(rss, bound), heapJudgement: judgeSlope(heap, bound) };
  });

  // The CSV, the plot, and the figures.
  const perGateway = ['rss_mib', 'rss_anon_mib', 'rss_file_mib', 'heap_mib', 'heap_total_mib', 'external_mib', 'live_heap_mib', 'lag_p99_ms', 'fds', 'connections', 'slow_reader_closes'];
  const columns = ['t', ...gateways.flatMap((_, i) => perGateway.map((c) => `g${i}_${c}`)), 'redis_rss_mib', 'deliveries', 'delivery_p99_ms', 'live_sockets', 'churn_closes', 'unexpected_closes', 'connect_failures', 'load1'];
  const cell = (v) => (typeof v === 'number' ? (Number.isFinite(v) ? String(Number(v.toFixed(4))) : '') : (v ?? ''));
  const csv = [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\n') + '\n';
  writeFileSync(join(OUT, 'soak.csv'), csv);
  const series = (key, name) => gateways.map((_, i) => ({ name: `${name ?? 'gateway'} ${i}`, points: rows.map((r) => [r.t / 60, r[`g${i}_${key}`]]) }));
  const slopeNotes = fits.map((f, i) => `gateway ${i} RSS slope after minute ${skip}: ${fmt(f.rss?.slope, 3)} ± ${fmt(1.96 * f.rss?.hacSe, 3)} MiB/min (95%, Newey-West): ${f.rssJudgement.verdict}`);
  writeFileSync(
    join(OUT, 'soak.svg'),
    lineChartSvg({
      title: `Tidings soak: ${NODES} gateways on Redis, ${fmt(CONNECTIONS)} sockets (${fmt(CONNECTIONS - STABLE)} churning at ${CHURN}/s), ${RATE} publishes/s, ${MINUTES} min`,
      notes: [
        `${new Date().toISOString().slice(0, 16)} UTC, ${COMMAND}; every ${SAMPLE_MS / 1000} s`,
        ...slopeNotes,
        ...(live.length === 2
          ? [`live heap after full collections, minute ${fmt(live[0].t / 60, 1)} -> ${fmt(live[1].t / 60, 1)}: ${gateways.map((_, i) => `gateway ${i} ${fmt(live[0].mib[i], 1)} -> ${fmt(live[1].mib[i], 1)} MiB`).join(', ')}`]
          : []),
        `lost ${result.stable.lost + result.churned.lost}, duplicated ${result.stable.duplicates + result.churned.duplicates} of ${fmt(result.stable.owed + result.churned.owed)} owed deliveries`,
      ],
      xLabel: 'minutes',
      panels: [
        { title: 'RSS', unit: 'MiB', series: [...series('rss_mib'), { name: 'redis-server', points: rows.map((r) => [r.t / 60, r.redis_rss_mib]) }], zeroBased: true },
        { title: 'V8 heap used', unit: 'MiB', series: series('heap_mib'), zeroBased: true },
        {
          title: 'gateway 0 RSS by kind: anonymous and file-backed (code) pages; V8 heap reserved; external (Buffers)',
          unit: 'MiB',
          series: [
            { name: 'RSS anonymous', points: rows.map((r) => [r.t / 60, r.g0_rss_anon_mib]) },
            { name: 'RSS file-backed', points: rows.map((r) => [r.t / 60, r.g0_rss_file_mib]) },
            { name: 'V8 heap total', points: rows.map((r) => [r.t / 60, r.g0_heap_total_mib]) },
            { name: 'external', points: rows.map((r) => [r.t / 60, r.g0_external_mib]) },
          ],
          zeroBased: true,
        },
        { title: 'event-loop lag p99 over each interval', unit: 'ms', series: series('lag_p99_ms'), zeroBased: true },
        { title: 'open file descriptors', unit: 'count', series: series('fds') },
        { title: 'connections (/status/ clients.node.active)', unit: 'count', series: series('connections') },
        { title: 'delivery latency p99 over each interval, all sockets', unit: 'ms', series: [{ name: 'p99', points: rows.map((r) => [r.t / 60, r.delivery_p99_ms]) }], zeroBased: true },
      ],
    }),
  );

  const rel = relative(ROOT, OUT);
  line(`\n# Soak results (${COMMAND}), finished ${new Date().toISOString()}; load: ${machineLoad()}`);
  line(`published ${fmt(published.sent)} (acknowledged ${fmt(published.acknowledged)}, unacknowledged ${published.unacknowledged}, retries ${published.retries}); ${fmt(allLat.length)} deliveries, latency p50 ${fmt(percentile(allLat, 50) / 1000, 2)} ms, p99 ${fmt(percentile(allLat, 99) / 1000, 2)} ms, max ${fmt(percentile(allLat, 100) / 1000, 1)} ms`);
  line(`churn: ${fmt(churnedConnections)} churning connections in all (${fmt(collected.reduce((n, c) => n + c.incarnations.length, 0))} connections), ${connectFailures} failed connects, ${unexpectedCloses} closed by a gateway (goal 0)`);
  for (const [name, r] of [['stayed connected', result.stable], ['churned (while connected)', result.churned]]) {
    line(`  ${name.padEnd(26)} owed ${fmt(r.owed).padStart(9)}, lost ${r.lost}, duplicated ${r.duplicates}, misdelivered ${r.misdelivered} (received outside their window, not counted: ${r.outsideWindow})`);
  }
  for (const [i, f] of fits.entries()) {
    const r = f.rss;
    const h = f.heap;
    line(
      `gateway ${i} RSS after minute ${skip}: ${fmt(r?.slope, 3)} MiB/min, standard error ${fmt(r?.hacSe, 3)} (Newey-West, lag ${r?.lag}; textbook ${fmt(r?.naiveSe, 3)}), 95% interval [${fmt(r?.ci95[0], 3)}, ${fmt(r?.ci95[1], 3)}] over ${r?.n} samples: ${f.rssJudgement.verdict} (bound |slope| < ${bound} MiB/min)`,
    );
    line(`          V8 heap used: ${fmt(h?.slope, 3)} MiB/min, 95% interval [${fmt(h?.ci95[0], 3)}, ${fmt(h?.ci95[1], 3)}]: ${f.heapJudgement.verdict}`);
    line(`          slopes of the parts (MiB/min): RSS anonymous ${fmt(f.parts.rss_anon_mib?.slope, 3)}, RSS file-backed ${fmt(f.parts.rss_file_mib?.slope, 3)}, V8 heap total ${fmt(f.parts.heap_total_mib?.slope, 3)}, external ${fmt(f.parts.external_mib?.slope, 3)}`);
    if (live.length === 2) {
      const [a, b] = live;
      line(`          live heap (after full collections): ${fmt(a.mib[i], 1)} MiB at minute ${fmt(a.t / 60, 1)}, ${fmt(b.mib[i], 1)} MiB at minute ${fmt(b.t / 60, 1)}: ${fmt((b.mib[i] - a.mib[i]) / ((b.t - a.t) / 60), 3)} MiB/min`);
    }
    line(`          RSS slope over each third of the span: ${f.thirds.map((t) => `${fmt(t?.slope, 3)} ± ${fmt(1.96 * t?.hacSe, 3)}`).join(', ')} MiB/min`);
  }
  const lost = result.stable.lost + result.churned.lost;
  const dups = result.stable.duplicates + result.churned.duplicates;
  const mis = result.stable.misdelivered + result.churned.misdelivered;
  line('\n# Goals');
  line(`${lost === 0 && published.unacknowledged === 0 ? 'PASS' : 'FAIL'}  0 lost: ${lost} lost of ${fmt(result.stable.owed + result.churned.owed)} owed (${published.unacknowledged} publishes unacknowledged)`);
  line(`${dups === 0 && mis === 0 ? 'PASS' : 'FAIL'}  0 duplicated: ${dups} duplicated, ${mis} misdelivered`);
  line(`${unexpectedCloses === 0 ? 'PASS' : 'FAIL'}  no socket closed by a gateway: ${unexpectedCloses}`);
  line(`${controlOk ? 'PASS' : 'FAIL'}  the audit sees 100 deliveries taken out and 1 repeated (positive control): ${control.stable.lost - result.stable.lost} more lost, ${control.stable.duplicates - result.stable.duplicates} more duplicated`);
  for (const [i, f] of fits.entries()) line(`${f.rssJudgement.pass ? 'PASS' : 'FAIL'}  gateway ${i} RSS slope after minute ${skip} indistinguishable from zero: ${fmt(f.rss?.slope, 3)} MiB/min, 95% interval [${fmt(f.rss?.ci95[0], 3)}, ${fmt(f.rss?.ci95[1], 3)}]`);
  line(`\nwrote ${rel}/soak.csv and ${rel}/soak.svg`);
  rmSync(scratch, { recursive: true, force: true });
}

async function cleanup() {
  for (const p of started.reverse()) await p.stop().catch(() => {});
  started.length = 0;
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));

if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build first`);
main()
  .catch((err) => {
    console.error(`soak failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
