#!/usr/bin/env node
/**
 * Slow readers (`npm run bench -- --scenario slow-readers`): one gateway, 4,000 reading
 * sockets with issue 2's traffic (200 publishes/s, 5 PHIDs of N each), and two more streams
 * published all along: large messages (16 KiB at 40/s) to 4 PHIDs and small ones (5/s) to 9
 * other PHIDs, which nobody listens to in the first phase. Then 1,000 sockets connect,
 * subscribe to those PHIDs (100 of them to the large stream, 900 to the small one) and stop
 * reading, while publishing goes on. The figures:
 *
 * - the reading sockets' delivery p99 with the slow readers, over their p99 without them
 *   (same run, same publishes): the goal is at most x1.5;
 * - the gateway's RSS against a bound derived from limits.maxBufferedBytes: a socket is cut
 *   off once its unsent bytes (ws bufferedAmount, the gateway's own memory) pass the limit,
 *   so each slow reader can hold at most limits.maxBufferedBytes plus one frame of it. The
 *   kernel takes the first bytes a reader does not read (the gateway's socket send buffer,
 *   autotuned up to tcp_wmem's maximum, and the reader's receive buffer): that memory is the
 *   kernel's, not the gateway's RSS, and it decides how long a slow reader takes to be cut;
 * - that the 100 large-stream readers were cut off (a positive control: the bound was
 *   reached, not just never approached) and the 900 others not.
 *
 * Only 100 get the large stream because the kernel's share is the larger one: at ~4 MiB per
 * socket, 1,000 readers filled to the cut-off would pin ~4 GiB of kernel socket memory, past
 * this machine's tcp_mem limit (which would drop packets for every process on it).
 *
 *   node bench/slow-readers.mjs
 *   node bench/slow-readers.mjs --connections 2000 --slow 500 --heavy 50
 *   node bench/slow-readers.mjs --help
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { connectGroup, planGroup, runPhase, startWorker } from './load.mjs';
import { GATEWAY_MAIN, adminGet, machineLoad, openFileLimit, startGateway } from './processes.mjs';
import { fmt, sleep } from './stats.mjs';

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string' },
    connections: { type: 'string', default: '4000' },
    slow: { type: 'string', default: '1000' },
    heavy: { type: 'string', default: '100' },
    'heavy-groups': { type: 'string', default: '4' },
    'heavy-bytes': { type: 'string', default: '16384' },
    'heavy-rate': { type: 'string', default: '40' },
    'light-groups': { type: 'string', default: '9' },
    'light-rate': { type: 'string', default: '5' },
    rate: { type: 'string', default: '200' },
    before: { type: 'string', default: '30' },
    with: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '3' },
    'max-buffered': { type: 'string', default: '1048576' },
    workers: { type: 'string', default: '2' },
    seed: { type: 'string', default: '42' },
    'worker-node-args': { type: 'string', default: '--max-semi-space-size=64 --single-threaded-gc' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: node bench/slow-readers.mjs [flags]   (npm run bench -- --scenario slow-readers [flags] builds first)
  --connections N      reading sockets (4000), each on 3 of N PHIDs
  --slow S             sockets that stop reading (1000)
  --heavy H            of them on the large stream, expected to be cut off (100)
  --heavy-groups G     PHIDs the large stream goes to, H/G sockets each (4)
  --heavy-bytes B      padding of each large message (16384)
  --heavy-rate R       large messages a second, over the G PHIDs (40)
  --light-groups G     PHIDs the small stream goes to (9)
  --light-rate R       small messages a second (5)
  --rate R             issue 2's publishes a second to the reading sockets (200)
  --before S           phase without slow readers, seconds (30)
  --with S             phase with them, seconds (60)
  --max-buffered B     the gateway's limits.maxBufferedBytes (1048576, its default)
  --workers W          client worker processes (2)`);
  process.exit(0);
}

const num = (v) => Number(v);
const N = num(args.connections);
const SLOW = num(args.slow);
const HEAVY = num(args.heavy);
const HEAVY_GROUPS = num(args['heavy-groups']);
const HEAVY_BYTES = num(args['heavy-bytes']);
const HEAVY_RATE = num(args['heavy-rate']);
const LIGHT_GROUPS = num(args['light-groups']);
const LIGHT_RATE = num(args['light-rate']);
const RATE = num(args.rate);
const MAX_BUFFERED = num(args['max-buffered']);
const WORKERS = Math.max(1, num(args.workers));
const MiB = 1024 * 1024;
const COMMAND = `npm run bench -- --scenario slow-readers ${process.argv.slice(2).filter((a) => !/^--scenario(=|$)|^slow-readers$/.test(a)).join(' ')}`.trim();
const line = (s = '') => console.log(s);
const running = [];

/** The kernel's TCP memory in use now, machine-wide (/proc/net/sockstat, pages). */
function tcpMemBytes() {
  const m = /TCP: .* mem (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return m ? Number(m[1]) * 4096 : NaN;
}

const sysctl = (name) => readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number);

/**
 * The two extra streams, published from the start to the end: large messages to the heavy
 * PHIDs and small ones to the light PHIDs, round robin, paced in 1 ms ticks. No `seq`: the
 * workers do not count them. Returns stop() with the counts.
 */
function startStreams(gateway) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const pad = 'x'.repeat(HEAVY_BYTES);
  let sent = 0;
  let failed = 0;
  let inflight = 0;
  let stopped = false;
  const post = (subscribers, padding) => {
    const body = JSON.stringify({ type: 'notification', key: 'slow', subscribers, ...(padding ? { pad: padding } : {}) });
    inflight++;
    const req = http.request(
      { agent, host: '127.0.0.1', port: gateway.adminPort, method: 'POST', path: '/', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => {
          inflight--;
          if (res.statusCode !== 200) failed++;
        });
      },
    );
    req.on('error', () => {
      inflight--;
      failed++;
    });
    req.end(body);
    sent++;
  };
  const t0 = performance.now();
  let heavy = 0;
  let light = 0;
  const tick = () => {
    if (stopped) return;
    const s = (performance.now() - t0) / 1000;
    while (heavy < Math.floor(s * HEAVY_RATE) && inflight < 256) post([`PHID-SLOWH-${heavy++ % HEAVY_GROUPS}`], pad);
    while (light < Math.floor(s * LIGHT_RATE) && inflight < 256) post([`PHID-SLOWL-${light++ % LIGHT_GROUPS}`]);
    setTimeout(tick, 1);
  };
  tick();
  return {
    async stop() {
      stopped = true;
      const deadline = Date.now() + 10_000;
      while (inflight > 0 && Date.now() < deadline) await sleep(20);
      agent.destroy();
      return { sent, failed };
    },
  };
}

/** RSS and kernel TCP memory every 250 ms, with their peaks since the last mark(). */
function startSampler(gateway) {
  let peakRss = 0;
  let peakTcp = 0;
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, gateway.rssBytes());
    peakTcp = Math.max(peakTcp, tcpMemBytes());
  }, 250);
  return {
    mark() {
      const out = { peakRss, peakTcp };
      peakRss = gateway.rssBytes();
      peakTcp = tcpMemBytes();
      return out;
    },
    stop: () => clearInterval(timer),
  };
}

async function slowReaderCloses(gateway) {
  return JSON.parse((await adminGet(gateway, '/status/')).body)['clients.slowReaderCloses'];
}

async function main() {
  line(`Tidings slow readers: node ${process.version}; ${fmt(N)} reading sockets at ${RATE} publishes/s, then ${fmt(SLOW)} more that stop reading (${HEAVY} of them on ${HEAVY_RATE} messages/s of ${fmt(HEAVY_BYTES)} bytes over ${HEAVY_GROUPS} PHIDs, ${SLOW - HEAVY} on ${LIGHT_RATE}/s of small ones over ${LIGHT_GROUPS})`);
  line(`command: ${COMMAND}`);
  line(`started ${new Date().toISOString()}; load: ${machineLoad()}`);
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build first`);
  if (openFileLimit() < N + SLOW + 1_000) throw new Error(`open-file limit ${openFileLimit()} is too low for ${N + SLOW} sockets on one gateway`);
  const [, rmemDefault] = sysctl('tcp_rmem');
  const [, , wmemMax] = sysctl('tcp_wmem');
  const tcpMem = sysctl('tcp_mem').map((pages) => pages * 4096);

  const gateway = await startGateway({ name: 'gateway', config: { limits: { maxBufferedBytes: MAX_BUFFERED } } });
  running.push(gateway);
  const workers = Array.from({ length: WORKERS }, () => startWorker(args['worker-node-args'].split(' ').filter(Boolean)));
  running.push(...workers.map((w) => ({ stop: () => w.close() })));
  try {
    await sleep(1_000);
    const rss0 = gateway.rssBytes();
    const group = planGroup({ firstId: 0, count: N, instance: 'default', transport: 'raw', nodes: [gateway], seed: num(args.seed) });
    await connectGroup(workers, group);
    await sleep(2_000);
    const perConnection = (gateway.rssBytes() - rss0) / N;
    line(`connected and subscribed ${fmt(N)} reading sockets; RSS ${fmt(rss0 / MiB, 1)} -> ${fmt(gateway.rssBytes() / MiB, 1)} MiB (${fmt(perConnection / 1024, 2)} KiB per connection)`);

    const streams = startStreams(gateway);
    const sampler = startSampler(gateway);
    const phase = async (label, seconds, seq0) => {
      const warm = await runPhase({ workers, group, nodes: [gateway], targets: [gateway], rate: RATE, seconds: num(args.warmup), seq0, label: `${label} warm-up` });
      sampler.mark();
      const r = await runPhase({ workers, group, nodes: [gateway], targets: [gateway], rate: RATE, seconds, seq0: warm.nextSeq, label });
      return { r, warm, peaks: sampler.mark() };
    };

    line(`\n## without slow readers: ${num(args.before)} s (after a ${args.warmup} s warm-up), the large and small streams published to nobody`);
    const without = await phase('without', num(args.before), 1);
    const lat0 = without.r.latency['raw/local'];
    line(`  reading sockets: p50 ${fmt(lat0.p50 / 1000, 2)} ms, p99 ${fmt(lat0.p99 / 1000, 2)} ms (${fmt(lat0.count)} deliveries), lost ${without.r.lost}, duplicates ${without.r.duplicates}; RSS peak ${fmt(without.peaks.peakRss / MiB, 1)} MiB; load ${fmt(without.r.loadAverage, 1)}`);

    // The slow readers: subscribed (a pong confirms it), then they stop reading.
    const closes0 = await slowReaderCloses(gateway);
    const slowSpecs = Array.from({ length: SLOW }, (_, i) => {
      const heavy = i < HEAVY;
      const phid = heavy ? `PHID-SLOWH-${i % HEAVY_GROUPS}` : `PHID-SLOWL-${i % LIGHT_GROUPS}`;
      return { id: N + i, transport: 'raw', node: 0, instance: 'default', phids: [phid], url: `ws://127.0.0.1:${gateway.clientPort}/~default/`, pauseAfterReady: true };
    });
    await connectGroup(workers, { count: SLOW, transport: 'raw', specs: slowSpecs });
    const slowAt = Date.now();
    line(`\n## with ${fmt(SLOW)} slow readers: connected, subscribed and stopped reading; ${num(args.with)} s (after a ${args.warmup} s warm-up)`);
    // When each of the large-stream readers was cut off, from /status/ once a second.
    const cutTimes = [];
    const watch = setInterval(async () => {
      const n = (await slowReaderCloses(gateway).catch(() => NaN)) - closes0;
      while (cutTimes.length < n) cutTimes.push((Date.now() - slowAt) / 1000);
    }, 1_000);
    const withSlow = await phase('with', num(args.with), without.r.nextSeq);
    clearInterval(watch);
    const lat1 = withSlow.r.latency['raw/local'];
    const cut = (await slowReaderCloses(gateway)) - closes0;
    const active = JSON.parse((await adminGet(gateway, '/status/')).body)['clients.node.active'];
    sampler.stop();
    const streamCounts = await streams.stop();
    line(`  reading sockets: p50 ${fmt(lat1.p50 / 1000, 2)} ms, p99 ${fmt(lat1.p99 / 1000, 2)} ms (${fmt(lat1.count)} deliveries), lost ${withSlow.r.lost}, duplicates ${withSlow.r.duplicates}; RSS peak ${fmt(withSlow.peaks.peakRss / MiB, 1)} MiB; load ${fmt(withSlow.r.loadAverage, 1)}`);
    line(`  slow readers cut off by the gateway: ${cut} (the first ${fmt(cutTimes[0], 0)} s, the last ${fmt(cutTimes[cutTimes.length - 1], 0)} s after they stopped reading); sockets still open on the gateway: ${fmt(active)} (${fmt(N)} reading + ${fmt(SLOW - cut)} slow)`);
    line(`  extra streams: ${fmt(streamCounts.sent)} messages published, ${streamCounts.failed} failed`);

    // The bound: what the gateway may hold for the slow readers, on top of what it held without them.
    const frame = HEAVY_BYTES + 512; // the large message as framed (padding, JSON fields, touched, WebSocket header)
    const perReader = MAX_BUFFERED + frame;
    const base = without.peaks.peakRss + SLOW * perConnection;
    const bound = base + SLOW * perReader;
    // Frames are built once per message and shared by its recipients' queues, so the readers of
    // one PHID hold the same bytes: per PHID at most maxBufferedBytes plus one frame.
    const sharedBound = base + (HEAVY_GROUPS + LIGHT_GROUPS) * perReader;
    const ratio = lat1.p99 / lat0.p99;
    const kernelPeak = withSlow.peaks.peakTcp - without.peaks.peakTcp;
    line('\n## Memory');
    line(`  bound on the gateway's RSS = RSS peak without slow readers (${fmt(without.peaks.peakRss / MiB, 1)} MiB) + ${fmt(SLOW)} connections x ${fmt(perConnection / 1024, 2)} KiB + ${fmt(SLOW)} x (limits.maxBufferedBytes ${fmt(MAX_BUFFERED)} + one frame ${fmt(frame)}) = ${fmt(bound / MiB, 1)} MiB`);
    line(`  what to expect below it: frames are built once per message and shared by its recipients' queues, so the readers of one PHID hold the same bytes, ${HEAVY_GROUPS + LIGHT_GROUPS} PHIDs x ${fmt(perReader / MiB, 2)} MiB = ${fmt((sharedBound - base) / MiB, 1)} MiB over ${fmt(base / MiB, 1)} MiB (${fmt(sharedBound / MiB, 1)} MiB; not a goal: the heap's own swings between phases are of that size)`);
    line(`  measured RSS peak with slow readers: ${fmt(withSlow.peaks.peakRss / MiB, 1)} MiB (+${fmt((withSlow.peaks.peakRss - without.peaks.peakRss) / MiB, 1)} MiB over the peak without them)`);
    line(`  kernel, not in the RSS: a reader that stops reading first fills the gateway's send buffer (autotuned up to tcp_wmem max ${fmt(wmemMax / MiB, 1)} MiB) and its own receive buffer (tcp_rmem default ${fmt(rmemDefault / 1024)} KiB, not grown since it does not read): up to ~${fmt((wmemMax + rmemDefault) / MiB, 1)} MiB per socket before the gateway buffers a byte. Machine-wide TCP memory (/proc/net/sockstat) peaked ${fmt(kernelPeak / MiB, 0)} MiB above the phase without them (~${fmt(kernelPeak / Math.max(1, HEAVY) / MiB, 1)} MiB per large-stream reader); tcp_mem pressure starts at ${fmt(tcpMem[1] / MiB, 0)} MiB and the hard limit is ${fmt(tcpMem[2] / MiB, 0)} MiB.`);

    line('\n# Goals');
    line(`${ratio <= 1.5 ? 'PASS' : 'FAIL'}  reading sockets' p99 with ${fmt(SLOW)} slow readers within x1.5 of without: ${fmt(lat0.p99 / 1000, 2)} -> ${fmt(lat1.p99 / 1000, 2)} ms (x${fmt(ratio, 2)})`);
    line(`${withSlow.peaks.peakRss <= bound ? 'PASS' : 'FAIL'}  gateway RSS under the bound from limits.maxBufferedBytes: peak ${fmt(withSlow.peaks.peakRss / MiB, 1)} MiB <= ${fmt(bound / MiB, 1)} MiB`);
    line(`${cut === HEAVY ? 'PASS' : 'FAIL'}  the ${HEAVY} large-stream readers were cut off and the ${SLOW - HEAVY} others not (positive control: the bound was reached): ${cut} cut`);
    const clean = without.r.lost + withSlow.r.lost + without.r.duplicates + withSlow.r.duplicates + without.warm.lost + withSlow.warm.lost;
    line(`${clean === 0 ? 'PASS' : 'FAIL'}  reading sockets: 0 lost, 0 duplicates: ${without.r.lost + withSlow.r.lost} lost, ${without.r.duplicates + withSlow.r.duplicates} duplicates`);
    line(`\nfinished ${new Date().toISOString()}; load: ${machineLoad()}`);
  } finally {
    for (const p of running.splice(0).reverse()) await p.stop().catch(() => {});
  }
}

process.on('SIGINT', () => void Promise.all(running.map((p) => p.stop())).then(() => process.exit(130)));
process.on('SIGTERM', () => void Promise.all(running.map((p) => p.stop())).then(() => process.exit(143)));

main().catch((err) => {
  console.error(`slow-readers failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});
