#!/usr/bin/env node
/**
 * Tidings benchmark (`npm run bench`, which builds first). Starts real gateway processes
 * on 127.0.0.1, holds client sockets in forked worker processes, publishes over keep-alive
 * HTTP at a target rate, and prints deliveries/s, publish-to-receive latency, lost and
 * duplicate deliveries, the gateway's CPU per published message and RSS per connection,
 * read from /proc of the gateway's PID.
 *
 *   node bench/run.mjs                              issue 2's goals (the default)
 *   node bench/run.mjs --scenario single --connections 10000 --rate 200 --seconds 10
 *   node bench/run.mjs --scenario cluster           2 and 3 nodes: Redis bus, relay alone
 *   node bench/run.mjs --scenario socketio          Socket.IO beside raw, 1 node and 2 nodes
 *   node bench/run.mjs --scenario all               all of the above
 *   node bench/run.mjs --scenario subscriptions     memory per subscription (bench/subscriptions.mjs)
 *   node bench/run.mjs --scenario storm             kill -9 of one of 3 gateways behind HAProxy (bench/storm.mjs)
 *   node bench/run.mjs --scenario slow-readers      1,000 sockets that stop reading (bench/slow-readers.mjs)
 *   npm run soak -- --minutes 10                    two gateways for minutes, with churn (bench/soak.mjs)
 *   node bench/run.mjs --scenario scale             2-8 gateways on one Redis, broadcast vs interest (bench/scale.mjs)
 */
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { GATEWAY_MAIN, CLOCK_TICKS, freePort, machineLoad, openFileLimit, startForeignServer, startGateway, startRedis } from './processes.mjs';
import { connectGroup, planGroup, runPhase, startWorker } from './load.mjs';
import { fmt, markdownTable, median, sleep } from './stats.mjs';
import { socketIoClientKind } from './sio-client.mjs';
import { bareHttpCpuPerRequest, startLoopbackProbe } from './reference.mjs';

// Scenarios with flags of their own run as their own script with the rest of the command line:
// subscriptions (memory per subscription, against a reference build), storm (kill -9 of one of
// three gateways behind HAProxy), slow-readers (1,000 sockets that stop reading), scale (gateways
// on one Redis, broadcast vs interest routing).
const SCRIPTS = { subscriptions: 'subscriptions.mjs', storm: 'storm.mjs', 'slow-readers': 'slow-readers.mjs', scale: 'scale.mjs' };
const argv = process.argv.slice(2);
const scenarioAt = argv.findIndex((a, i) => (a.startsWith('--scenario=') && SCRIPTS[a.slice(11)]) || (a === '--scenario' && SCRIPTS[argv[i + 1]]));
if (scenarioAt !== -1) {
  const name = argv[scenarioAt] === '--scenario' ? argv[scenarioAt + 1] : argv[scenarioAt].slice(11);
  const rest = [...argv.slice(0, scenarioAt), ...argv.slice(scenarioAt + (argv[scenarioAt] === '--scenario' ? 2 : 1))];
  const run = spawnSync(process.execPath, [...process.execArgv, new URL(`./${SCRIPTS[name]}`, import.meta.url).pathname, ...rest], { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'default' },
    connections: { type: 'string' },
    'sio-connections': { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    nodes: { type: 'string' },
    layouts: { type: 'string' },
    workers: { type: 'string', default: '2' },
    seed: { type: 'string', default: '42' },
    'sio-client': { type: 'string', default: 'auto' },
    profile: { type: 'string' },
    'gateway-node-args': { type: 'string', default: '' },
    'gateway-log': { type: 'string' },
    // A worker takes ~7,500 deliveries/s at 1,000 publishes/s; with V8's default 16 MiB young
    // generation it pauses for a scavenge (3-13 ms) several times a second, and every delivery
    // arriving meanwhile is timed late: that was most of the measured p99. 64 MiB makes those
    // pauses rare; it changes nothing in the gateways. --single-threaded-gc keeps a worker's
    // collections on its own thread: spread over V8's helper threads, one scavenge held both
    // vCPUs for ~10 ms while the gateways waited (perf sched).
    'worker-node-args': { type: 'string', default: '--max-semi-space-size=64 --single-threaded-gc' },
    'compare-aphlict': { type: 'string' },
    'phids-per-message': { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    'cpu-phases': { type: 'string', default: '3' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: node bench/run.mjs [--scenario default|single|cluster|socketio|all|subscriptions|storm|slow-readers|scale]
  (subscriptions: memory per subscription against a reference build; its flags: node bench/subscriptions.mjs --help)
  (scale: 2-8 gateways on one Redis, broadcast vs interest routing; its flags: node bench/scale.mjs --help)
  (storm: kill -9 of one of three gateways behind HAProxy; its flags: node bench/storm.mjs --help)
  (slow-readers: 1,000 sockets that stop reading; its flags: node bench/slow-readers.mjs --help)
  (the soak is npm run soak; its flags: node bench/soak.mjs --help)
  --connections N      sockets (single: 1000; cluster: 5000; socketio: raw sockets, 2500)
  --sio-connections N  Socket.IO clients (socketio: 2500)
  --rate R             publishes per second (single: 200; cluster: 1000; socketio: 200)
  --seconds S          publish phase length (10)
  --nodes LIST         cluster node counts (2,3)
  --layouts LIST       cluster layouts: redis,relay,both (redis,relay)
  --workers W          client worker processes (2)
  --seed N             PRNG seed of subscriptions and addressees (42)
  --sio-client KIND    auto (socket.io-client when installed) or minimal
  --phids-per-message K  PHIDs each message is addressed to (5; 0 measures the publish path alone)
  --warmup S           seconds of publishing before each measured phase, not measured (3)
  --cpu-phases K       measured phases behind issue 2's CPU figures; the goal takes their median (3)
  --profile DIR        write a V8 CPU profile of each gateway into DIR (--cpu-prof)
  --compare-aphlict PATH  run the single-node scenarios against PATH (a real Aphlict's
                       aphlict_server.js, outside this repository) instead of Tidings
  --gateway-log FILE   append every gateway's stdout lines to FILE (diagnostics)
  --gateway-node-args="A B"  extra node flags for the gateways (diagnostics, e.g. =--perf-basic-prof)
  --worker-node-args="A B"   node flags for the client workers (default --max-semi-space-size=64
                       --single-threaded-gc: their own GC pauses neither show up as delivery latency
                       nor take the gateways' cores; see bench/README.md)`);
  process.exit(0);
}

const num = (v, d) => (v === undefined ? d : Number(v));
const SECONDS = num(args.seconds, 10);
const WORKERS = Math.max(1, num(args.workers, 2));
let seed = num(args.seed, 42);
let seq = 1;
const summary = []; // rows for the final markdown table
const goals = []; // [goal, measured, pass]
const started = [];

function line(s = '') {
  console.log(s);
}

function describe(r) {
  const groups = Object.entries(r.latency)
    .map(([g, l]) => `${g} p50 ${fmt(l.p50 / 1000, 2)} ms, p99 ${fmt(l.p99 / 1000, 2)} ms, max ${fmt(l.max / 1000, 1)} ms (${l.count})`)
    .join('; ');
  line(`  published ${r.published} at ${fmt(r.publishRate, 0)}/s (target ${r.rateTarget}/s${r.lagged ? `, ${r.lagged} ticks behind` : ''}${r.queued ? `, ${r.queued} waited for a publisher socket` : ''}), publish errors ${r.publishErrors}${r.retries ? ` (${r.retries} retried after a keep-alive reset)` : ''}${r.firstError ? ` (${r.firstError})` : ''}`);
  line(`  deliveries ${r.deliveries}/${r.expectedDeliveries} (${fmt(r.deliveriesPerSecond, 0)}/s), lost ${r.lost}, duplicates ${r.duplicates}, misdelivered ${r.misdelivered}`);
  line(`  latency: ${groups || 'none'}`);
  const cpu = r.cpuPerMessage.map((c, i) => `${fmt(c, 0)} us (system ${fmt(r.systemPerMessage[i], 0)})`).join(', ');
  line(`  gateway CPU per published message: ${cpu}${r.cpuPerMessage.length > 1 ? ' (per node)' : ''}`);
  if (r.runQueue.some((q) => q.wakeupsPerSecond > 0)) {
    const waits = r.runQueue.map((q) => `${fmt(q.perWakeupUs, 0)} us over ${fmt(q.wakeupsPerSecond, 0)}/s (${fmt(q.percent, 1)}% of the phase)`).join(', ');
    line(`  gateway event loop runnable but waiting for a CPU, mean per wake-up: ${waits}${r.runQueue.length > 1 ? ' (per node)' : ''}`);
  }
  const side = r.loadSide;
  const others = side.others.map((o) => `, ${o.name} ${fmt(o.percent)}%`).join('');
  line(`  load side CPU (% of one core): publisher ${fmt(side.publisher)}%, client workers ${side.workers.map((w) => `${fmt(w)}%`).join(' + ')}${others}`);
  if (r.probe) {
    const p = r.probe;
    line(`  machine reference, a bare loopback TCP round trip between two other processes during the phase: p50 ${fmt(p.p50, 2)} ms, p99 ${fmt(p.p99, 2)} ms, p99.9 ${fmt(p.p999, 2)} ms, max ${fmt(p.max, 1)} ms (${p.count})`);
  }
}

/** p50/p99 of a phase's deliveries: the named group, or all groups pooled by weight. */
function lat(r, group) {
  const l = r.latency[group];
  return l ? `${fmt(l.p50 / 1000, 2)} / ${fmt(l.p99 / 1000, 2)}` : '-';
}

/**
 * A warm-up (JIT, heap sizing, connection pools: steady state is what is measured), then the
 * measured phase. Warm-up messages are checked for loss and duplicates too.
 */
/** Whether a phase delivered everything exactly once, to the right sockets only. */
const isClean = (phase) => phase.lost === 0 && phase.duplicates === 0 && phase.misdelivered === 0;

async function measuredPhase(options, { probe = false } = {}) {
  const warmupSeconds = num(args.warmup, 3);
  let warmup = { published: 0, lost: 0, duplicates: 0, misdelivered: 0 };
  if (warmupSeconds > 0) {
    warmup = await runPhase({ ...options, seconds: warmupSeconds, seq0: seq, label: `${options.label} warm-up` });
    seq = warmup.nextSeq;
    line(`  warm-up: ${warmup.published} messages in ${warmupSeconds} s, lost ${warmup.lost}, duplicates ${warmup.duplicates}, misdelivered ${warmup.misdelivered}`);
  }
  const loopback = probe ? await startLoopbackProbe() : undefined;
  const r = await runPhase({ ...options, seq0: seq });
  if (loopback) r.probe = await loopback.stop();
  seq = r.nextSeq;
  r.clean = isClean(r) && isClean(warmup);
  return r;
}

async function withWorkers(fn) {
  const workers = Array.from({ length: WORKERS }, () => startWorker(args['worker-node-args'].split(' ').filter(Boolean)));
  try {
    return await fn(workers);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}

async function withGateways(count, configFor, fn) {
  const nodes = [];
  try {
    for (let i = 0; i < count; i++) {
      const nodeArgs = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
      nodeArgs.push(...args['gateway-node-args'].split(' ').filter(Boolean));
      const node = args['compare-aphlict']
        ? await startForeignServer({ script: args['compare-aphlict'], name: `aphlict${i}` })
        : await startGateway({ name: `node${i}`, nodeArgs, logFile: args['gateway-log'], ...(await configFor(i)) });
      started.push(node);
      nodes.push(node);
    }
    return await fn(nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const n of nodes) {
      const at = started.indexOf(n);
      if (at !== -1) started.splice(at, 1);
      if (n.warnings.length) line(`  (${n.name} warnings: ${[...new Set(n.warnings)].slice(0, 5).join('; ')})`);
    }
  }
}

/** RSS per connection: RSS before the sockets vs after they are connected, subscribed and idle. */
async function settleRss(node, ms = 2_000) {
  await sleep(ms);
  return node.rssBytes();
}

/**
 * One gateway, N raw sockets: RSS per idle socket, then `phases` publish phases back to back
 * (one warm-up first). CPU per message on this VM varies by up to 10-20% from one phase to the
 * next, so a goal on it takes the median of the phases; every phase's figure is printed.
 */
async function singleNode({ connections, rate, seconds, label, phases = 1 }) {
  line(`\n## ${label}: 1 node, ${connections} raw sockets, ${rate} publishes/s for ${seconds} s`);
  line(`  load: ${machineLoad()}`);
  return withGateways(1, () => ({}), (nodes) =>
    withWorkers(async (workers) => {
      const rss0 = await settleRss(nodes[0], 1_000);
      const group = planGroup({ firstId: 0, count: connections, instance: 'default', transport: 'raw', nodes, seed: seed++ });
      const connectMs = await connectGroup(workers, group);
      const rss1 = await settleRss(nodes[0]);
      const rssPerConnection = (rss1 - rss0) / connections;
      line(`  connected and subscribed in ${connectMs} ms; RSS ${fmt(rss0 / 1048576, 1)} MiB -> ${fmt(rss1 / 1048576, 1)} MiB: ${fmt(rssPerConnection / 1024, 2)} KiB per idle connection`);
      const options = { workers, group, nodes, targets: nodes, rate, seconds, label, phidsPerMessage: num(args['phids-per-message'], 5) };
      const r = await measuredPhase(options);
      describe(r);
      r.cpuPhases = [r.cpuPerMessage[0]];
      for (let k = 1; k < phases; k++) {
        const again = await runPhase({ ...options, seq0: seq });
        seq = again.nextSeq;
        line(`  phase ${k + 1} of ${phases}:`);
        describe(again);
        r.cpuPhases.push(again.cpuPerMessage[0]);
        r.clean &&= isClean(again);
        r.lost += again.lost;
        r.duplicates += again.duplicates;
      }
      r.cpuMedian = median(r.cpuPhases);
      if (phases > 1) line(`  gateway CPU per published message over ${phases} phases: ${r.cpuPhases.map((c) => fmt(c)).join(', ')} us; median ${fmt(r.cpuMedian)} us`);
      r.rssPerConnection = rssPerConnection;
      summary.push([label, '1 raw', fmt(connections), fmt(r.publishRate), fmt(r.deliveriesPerSecond), lat(r, 'raw/local'), `${r.lost} / ${r.duplicates}`, phases > 1 ? `${fmt(r.cpuMedian)} (median of ${r.cpuPhases.map((c) => fmt(c)).join(', ')})` : fmt(r.cpuPerMessage[0]), fmt(rssPerConnection / 1024, 2), fmt(r.loadAverage, 1)]);
      return r;
    }),
  );
}

async function issue2() {
  line('\n# Issue 2: one node, raw Aphlict sockets');
  const phases = Math.max(1, num(args['cpu-phases'], 3));
  const small = await singleNode({ connections: 1_000, rate: 500, seconds: SECONDS, label: 'cpu N=1,000', phases });
  const large = await singleNode({ connections: 10_000, rate: 500, seconds: SECONDS, label: 'cpu+rss N=10,000', phases });
  const latency = await singleNode({ connections: 5_000, rate: 200, seconds: SECONDS, label: 'p99 N=5,000' });
  const c1 = small.cpuMedian;
  const c10 = large.cpuMedian;
  const bare = await bareHttpCpuPerRequest({ rate: 500, seconds: SECONDS });
  line(`\n## reference: a bare node:http server (reads the body, answers 200) at 500 requests/s costs ${fmt(bare)} us CPU per request on this machine now`);
  line(`  the gateway's N=10,000 figure is ${fmt(c10)} us: ${fmt(c10 - bare)} us above it for the publish path and ~15 deliveries`);
  const p99 = latency.latency['raw/local']?.p99 / 1000;
  goals.push([`CPU per message at N=10,000 <= 400 us (median of ${phases} phases)`, `${fmt(c10)} us (phases: ${large.cpuPhases.map((c) => fmt(c)).join(', ')})`, c10 <= 400]);
  goals.push(['CPU at N=10,000 within 25% of N=1,000', `${fmt(c1)} -> ${fmt(c10)} us (x${fmt(c10 / c1, 2)})`, c10 <= c1 * 1.25]);
  goals.push(['p99 at 200/s, N=5,000 <= 5 ms', `${fmt(p99, 2)} ms`, p99 <= 5]);
  goals.push(['RSS per idle connection at N=10,000 <= 8 KiB', `${fmt(large.rssPerConnection / 1024, 2)} KiB`, large.rssPerConnection <= 8 * 1024]);
  const lost = small.lost + large.lost + latency.lost;
  const dups = small.duplicates + large.duplicates + latency.duplicates;
  goals.push(['0 lost, 0 duplicates (issue 2 runs, warm-ups included)', `${lost} lost, ${dups} duplicates`, small.clean && large.clean && latency.clean]);
}

/**
 * Node configs for a cluster layout: Redis bus, relay, or both. The relay is a full mesh (every
 * node lists every admin port), so it runs as the README advises for one: relay.forward off,
 * or every message would cross the mesh again from each receiving node ((n-1)^2 requests).
 */
async function clusterConfigs(count, layout, redisUrl) {
  const adminPorts = [];
  for (let i = 0; i < count; i++) adminPorts.push(await freePort());
  const peers = adminPorts.map((port) => ({ host: '127.0.0.1', port, protocol: 'http' }));
  return (i) => ({
    adminPort: adminPorts[i],
    config: {
      ...(layout !== 'relay' ? { redis: { url: redisUrl } } : {}),
      ...(layout !== 'redis' ? { cluster: peers, relay: { forward: false } } : {}),
    },
  });
}

async function cluster() {
  line('\n# Issue 3: cluster, publishes round robin over the nodes, latency for sockets on the other nodes');
  const counts = (args.nodes ?? '2,3').split(',').map(Number);
  const layouts = (args.layouts ?? 'redis,relay').split(',');
  const connections = num(args.connections, 5_000);
  const rate = num(args.rate, 1_000);
  const redis = await startRedis();
  try {
    for (const layout of layouts) {
      for (const count of counts) {
        const label = `${count} nodes, ${layout === 'redis' ? 'Redis bus' : layout === 'relay' ? 'relay alone' : 'Redis + relay'}`;
        line(`\n## ${label}: ${connections} raw sockets spread over the nodes, ${rate} publishes/s for ${SECONDS} s`);
        line(`  load: ${machineLoad()}`);
        const configFor = await clusterConfigs(count, layout, redis.url);
        await withGateways(count, configFor, (nodes) =>
          withWorkers(async (workers) => {
            const group = planGroup({ firstId: 0, count: connections, instance: 'default', transport: 'raw', nodes, seed: seed++ });
            const connectMs = await connectGroup(workers, group);
            line(`  connected and subscribed in ${connectMs} ms`);
            await sleep(1_000);
            const r = await measuredPhase({ workers, group, nodes, targets: nodes, rate, seconds: SECONDS, label, others: [redis] }, { probe: true });
            describe(r);
            summary.push([label, `${count} raw`, fmt(connections), fmt(r.publishRate), fmt(r.deliveriesPerSecond), `${lat(r, 'raw/remote')} (local ${lat(r, 'raw/local')})`, `${r.lost} / ${r.duplicates}`, r.cpuPerMessage.map((c) => fmt(c)).join(', '), '-', fmt(r.loadAverage, 1)]);
            const p99 = r.latency['raw/remote']?.p99 / 1000;
            goals.push([`${label}: remote p99 at ${rate}/s <= 5 ms`, `${fmt(p99, 2)} ms`, p99 <= 5]);
            goals.push([`${label}: 0 lost, 0 duplicates`, `${r.lost} lost, ${r.duplicates} duplicates`, r.clean]);
          }),
        );
      }
    }
  } finally {
    await redis.stop();
  }
}

async function socketio() {
  const kind = await socketIoClientKind(args['sio-client']);
  line(`\n# Issue 4: Socket.IO clients (${kind}) beside raw sockets in the same run`);
  const rawCount = num(args.connections, 2_500);
  const sioCount = num(args['sio-connections'], 2_500);
  const rate = num(args.rate, 200);
  const redis = await startRedis();
  try {
    for (const count of [1, 2]) {
      const label = count === 1 ? '1 node' : `${count} nodes, Redis`;
      line(`\n## socketio, ${label}: ${rawCount} raw + ${sioCount} Socket.IO, ${rate} publishes/s for ${SECONDS} s per transport`);
      line(`  load: ${machineLoad()}`);
      const configFor = count === 1 ? () => ({}) : await clusterConfigs(count, 'redis', redis.url);
      await withGateways(count, configFor, (nodes) =>
        withWorkers(async (workers) => {
          const rss0 = await settleRss(nodes[0], 1_000);
          const rssAll = () => nodes.reduce((n, g) => n + g.rssBytes(), 0);
          const base = count === 1 ? rss0 : rssAll();
          const raw = planGroup({ firstId: 0, count: rawCount, instance: 'raw', transport: 'raw', nodes, seed: seed++ });
          const sio = planGroup({ firstId: rawCount, count: sioCount, instance: 'sio', transport: 'sio', nodes, seed: seed++, sioClient: args['sio-client'] });
          await connectGroup(workers, raw);
          await sleep(2_000);
          const afterRaw = rssAll();
          await connectGroup(workers, sio, 50);
          await sleep(2_000);
          const afterSio = rssAll();
          const rssRaw = (afterRaw - base) / rawCount;
          const rssSio = (afterSio - afterRaw) / sioCount;
          line(`  RSS per idle connection (all nodes): raw ${fmt(rssRaw / 1024, 2)} KiB, Socket.IO ${fmt(rssSio / 1024, 2)} KiB`);
          for (const [group, rssPer] of [[raw, rssRaw], [sio, rssSio]]) {
            const phaseLabel = `${group.transport === 'raw' ? 'raw' : 'Socket.IO'}, ${label}`;
            line(`\n  ${phaseLabel}: publishes to instance '${group.instance}'`);
            const r = await measuredPhase({ workers, group, nodes, targets: nodes, rate, seconds: SECONDS, label: phaseLabel, others: count > 1 ? [redis] : [] });
            describe(r);
            const t = group.transport;
            const latText = count === 1 ? lat(r, `${t}/local`) : `${lat(r, `${t}/remote`)} (local ${lat(r, `${t}/local`)})`;
            summary.push([phaseLabel, `${count} ${t}`, fmt(group.count), fmt(r.publishRate), fmt(r.deliveriesPerSecond), latText, `${r.lost} / ${r.duplicates}`, r.cpuPerMessage.map((c) => fmt(c)).join(', '), fmt(rssPer / 1024, 2), fmt(r.loadAverage, 1)]);
            goals.push([`${phaseLabel}: 0 lost, 0 duplicates`, `${r.lost} lost, ${r.duplicates} duplicates`, r.clean]);
          }
        }),
      );
    }
  } finally {
    await redis.stop();
  }
}

async function custom() {
  const connections = num(args.connections, 1_000);
  await singleNode({ connections, rate: num(args.rate, 200), seconds: SECONDS, label: `single N=${fmt(connections)}` });
}

async function main() {
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build first`);
  const limit = openFileLimit();
  // A single gateway holds every socket (10,000 in the default run); each worker holds its share.
  const needed = Math.max(num(args.connections, 0) + num(args['sio-connections'], 0), 10_000) + 1_000;
  line(`Tidings bench: node ${process.version}, ${WORKERS} client worker processes (node flags: ${args['worker-node-args'] || 'none'}), publisher node flags: ${process.execArgv.join(' ') || 'none'}, CLK_TCK ${CLOCK_TICKS}, open-file limit ${limit}`);
  if (!process.execArgv.includes('--single-threaded-gc')) {
    line('note: the publisher runs without --single-threaded-gc (npm run bench passes it): its GC helper threads can take both cores for milliseconds at a time');
  }
  line(`started ${new Date().toISOString()}; load: ${machineLoad()}`);
  if (limit < needed) {
    line(`open-file limit ${limit} is too low for this run (the gateway needs about ${needed}): raise it with 'ulimit -n 65536' in the shell first`);
    process.exitCode = 1;
    return;
  }
  const scenario = args.scenario;
  if (scenario === 'default' || scenario === 'all') await issue2();
  if (scenario === 'single') await custom();
  if (scenario === 'cluster' || scenario === 'all') await cluster();
  if (scenario === 'socketio' || scenario === 'all') await socketio();
  if (!['default', 'all', 'single', 'cluster', 'socketio'].includes(scenario)) throw new Error(`unknown scenario ${scenario}`);

  line('\n# Summary (latency p50 / p99 in ms; CPU in us of gateway CPU per published message, per node)');
  line(`finished ${new Date().toISOString()}; load: ${machineLoad()}\n`);
  line(markdownTable(['run', 'nodes', 'sockets', 'publishes/s', 'deliveries/s', 'p50 / p99 ms', 'lost / dup', 'CPU us/msg', 'RSS KiB/conn', 'load (1 min)'], summary));
  if (goals.length) {
    line('\n# Goals');
    for (const [goal, measured, pass] of goals) line(`${pass ? 'PASS' : 'FAIL'}  ${goal}: ${measured}`);
  }
}

const cleanup = async () => {
  await Promise.all(started.map((n) => n.stop()));
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));

main().catch(async (err) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  await cleanup();
  process.exitCode = 1;
});
