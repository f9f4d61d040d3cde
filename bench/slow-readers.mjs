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
 *   (same run, same publishes; the phase without them runs before and again after, the slow
 *   readers closed, and the two are pooled, so that a machine whose pace changed during the
 *   run weighs on both sides; each phase beside a machine reference): at most x1.5;
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
import { GATEWAY_MAIN, adminGet, machineLoad, openFileLimit, parseMetrics, startGateway } from './processes.mjs';
import { fmt, percentile, sleep } from './stats.mjs';
import { startLoopbackProbe } from './reference.mjs';

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

/**
 * RSS and kernel TCP memory every 250 ms, V8's heap (used, reserved) and external memory
 * once a second from /metrics, with their peaks since the last mark().
 */
function startSampler(gateway) {
  const fresh = () => ({ rss: gateway.rssBytes(), tcp: tcpMemBytes(), heapUsed: 0, heapTotal: 0, external: 0 });
  let peak = fresh();
  let ticks = 0;
  const timer = setInterval(async () => {
    peak.rss = Math.max(peak.rss, gateway.rssBytes());
    peak.tcp = Math.max(peak.tcp, tcpMemBytes());
    if (ticks++ % 4) return;
    try {
      const m = parseMetrics((await adminGet(gateway, '/metrics')).body);
      peak.heapUsed = Math.max(peak.heapUsed, m.get('nodejs_heap_size_used_bytes'));
      peak.heapTotal = Math.max(peak.heapTotal, m.get('nodejs_heap_size_total_bytes'));
      peak.external = Math.max(peak.external, m.get('nodejs_external_memory_bytes'));
    } catch {
      // a missed reading; the next one counts
    }
  }, 250);
  return {
    mark() {
      const out = { peakRss: peak.rss, peakTcp: peak.tcp, heapUsed: peak.heapUsed, heapTotal: peak.heapTotal, external: peak.external };
      peak = fresh();
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
    /**
     * A warm-up, then the measured time in `parts` equal runs (the slow readers' phase in two:
     * while the large-stream readers fill up and are cut off, and after), each beside the
     * machine reference, a loopback round trip between two other processes.
     */
    const phase = async (label, seconds, seq0, parts = 1) => {
      const warm = await runPhase({ workers, group, nodes: [gateway], targets: [gateway], rate: RATE, seconds: num(args.warmup), seq0, label: `${label} warm-up` });
      sampler.mark();
      const runs = [];
      let next = warm.nextSeq;
      for (let k = 0; k < parts; k++) {
        const probe = await startLoopbackProbe();
        const r = await runPhase({ workers, group, nodes: [gateway], targets: [gateway], rate: RATE, seconds: seconds / parts, seq0: next, label });
        r.probe = await probe.stop();
        next = r.nextSeq;
        runs.push(r);
      }
      const all = runs.flatMap((r) => r.samples['raw/local'] ?? []);
      const sum = (key) => runs.reduce((n, r) => n + r[key], 0);
      return {
        runs,
        warm,
        nextSeq: next,
        lost: sum('lost') + warm.lost,
        duplicates: sum('duplicates') + warm.duplicates,
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        count: all.length,
        load: Math.max(...runs.map((r) => r.loadAverage)),
        peaks: sampler.mark(),
      };
    };
    const describe = (p) =>
      p.runs
        .map((r, k) => `${p.runs.length > 1 ? `part ${k + 1}: ` : ''}p99 ${fmt(r.latency['raw/local'].p99 / 1000, 2)} ms, machine reference (loopback round trip) p99 ${fmt(r.probe.p99, 2)} ms, load ${fmt(r.loadAverage, 1)}`)
        .join('; ');
    const memory = (p) => `RSS peak ${fmt(p.peaks.peakRss / MiB, 1)} MiB (V8 heap used ${fmt(p.peaks.heapUsed / MiB, 1)}, reserved ${fmt(p.peaks.heapTotal / MiB, 1)}, external ${fmt(p.peaks.external / MiB, 1)} MiB at their peaks)`;

    line(`\n## without slow readers: ${num(args.before)} s (after a ${args.warmup} s warm-up), the large and small streams published to nobody`);
    const without = await phase('without', num(args.before), 1);
    line(`  reading sockets: p50 ${fmt(without.p50 / 1000, 2)} ms, p99 ${fmt(without.p99 / 1000, 2)} ms (${fmt(without.count)} deliveries), lost ${without.lost}, duplicates ${without.duplicates}; ${describe(without)}`);
    line(`  ${memory(without)}`);

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
    const withSlow = await phase('with', num(args.with), without.nextSeq, 2);
    clearInterval(watch);
    const cut = (await slowReaderCloses(gateway)) - closes0;
    const active = JSON.parse((await adminGet(gateway, '/status/')).body)['clients.node.active'];
    line(`  reading sockets: p50 ${fmt(withSlow.p50 / 1000, 2)} ms, p99 ${fmt(withSlow.p99 / 1000, 2)} ms (${fmt(withSlow.count)} deliveries), lost ${withSlow.lost}, duplicates ${withSlow.duplicates}; ${describe(withSlow)}`);
    line(`  ${memory(withSlow)}`);
    line(`  slow readers cut off by the gateway: ${cut} (the first ${fmt(cutTimes[0], 0)} s, the last ${fmt(cutTimes[cutTimes.length - 1], 0)} s after they stopped reading); sockets still open on the gateway: ${fmt(active)} (${fmt(N)} reading + ${fmt(SLOW - cut)} slow)`);

    // The same phase as the first once more, the slow readers gone: a machine that changed
    // pace during the run (other work on these cores) shows on both sides of the slow readers.
    await Promise.all(workers.map((w) => w.ask({ type: 'drop', ids: slowSpecs.map((s) => s.id) }, 'dropped')));
    await sleep(1_000);
    line(`\n## without slow readers again (closed): ${num(args.before)} s (after a ${args.warmup} s warm-up)`);
    const after = await phase('after', num(args.before), withSlow.nextSeq);
    sampler.stop();
    const streamCounts = await streams.stop();
    line(`  reading sockets: p50 ${fmt(after.p50 / 1000, 2)} ms, p99 ${fmt(after.p99 / 1000, 2)} ms (${fmt(after.count)} deliveries), lost ${after.lost}, duplicates ${after.duplicates}; ${describe(after)}`);
    line(`  extra streams over the three phases: ${fmt(streamCounts.sent)} messages published, ${streamCounts.failed} failed`);

    // The bound: what the gateway may hold for the slow readers, on top of what it held without them.
    const frame = HEAVY_BYTES + 512; // the large message as framed (padding, JSON fields, touched, WebSocket header)
    const perReader = MAX_BUFFERED + frame;
    const base = without.peaks.peakRss + SLOW * perConnection;
    const bound = base + SLOW * perReader;
    // Frames are built once per message and shared by its recipients' queues, so the readers of
    // one PHID hold the same bytes: per PHID at most maxBufferedBytes plus one frame.
    const sharedBound = base + (HEAVY_GROUPS + LIGHT_GROUPS) * perReader;
    // The reference: both phases without slow readers, pooled (before and after them).
    const reference = percentile([...without.runs, ...after.runs].flatMap((r) => r.samples['raw/local'] ?? []), 99);
    const ratio = withSlow.p99 / reference;
    const probeP99 = (p) => Math.max(...p.runs.map((r) => r.probe.p99));
    const kernelPeak = withSlow.peaks.peakTcp - without.peaks.peakTcp;
    line('\n## Memory');
    line(`  bound on the gateway's RSS = RSS peak without slow readers (${fmt(without.peaks.peakRss / MiB, 1)} MiB) + ${fmt(SLOW)} connections x ${fmt(perConnection / 1024, 2)} KiB + ${fmt(SLOW)} x (limits.maxBufferedBytes ${fmt(MAX_BUFFERED)} + one frame ${fmt(frame)}) = ${fmt(bound / MiB, 1)} MiB`);
    line(`  what to expect below it: frames are built once per message and shared by its recipients' queues, so the readers of one PHID hold the same bytes, ${HEAVY_GROUPS + LIGHT_GROUPS} PHIDs x ${fmt(perReader / MiB, 2)} MiB = ${fmt((sharedBound - base) / MiB, 1)} MiB over ${fmt(base / MiB, 1)} MiB (${fmt(sharedBound / MiB, 1)} MiB; not a goal: the heap's own swings between phases are of that size)`);
    line(`  measured RSS peak with slow readers: ${fmt(withSlow.peaks.peakRss / MiB, 1)} MiB (+${fmt((withSlow.peaks.peakRss - without.peaks.peakRss) / MiB, 1)} MiB over the peak without them)`);
    line(`  kernel, not in the RSS: a reader that stops reading first fills the gateway's send buffer (autotuned up to tcp_wmem max ${fmt(wmemMax / MiB, 1)} MiB) and its own receive buffer (tcp_rmem default ${fmt(rmemDefault / 1024)} KiB, not grown since it does not read): up to ~${fmt((wmemMax + rmemDefault) / MiB, 1)} MiB per socket before the gateway buffers a byte. Machine-wide TCP memory (/proc/net/sockstat) peaked ${fmt(kernelPeak / MiB, 0)} MiB above the phase without them (~${fmt(kernelPeak / Math.max(1, HEAVY) / MiB, 1)} MiB per large-stream reader); tcp_mem pressure starts at ${fmt(tcpMem[1] / MiB, 0)} MiB and the hard limit is ${fmt(tcpMem[2] / MiB, 0)} MiB.`);

    line('\n# Goals');
    line(
      `${ratio <= 1.5 ? 'PASS' : 'FAIL'}  reading sockets' p99 with ${fmt(SLOW)} slow readers within x1.5 of without them (before and after, pooled): ${fmt(reference / 1000, 2)} -> ${fmt(withSlow.p99 / 1000, 2)} ms (x${fmt(ratio, 2)}; x${fmt(withSlow.p99 / without.p99, 2)} over before alone, x${fmt(withSlow.p99 / after.p99, 2)} over after alone; machine reference p99 ${fmt(probeP99(without), 2)} / ${fmt(probeP99(withSlow), 2)} / ${fmt(probeP99(after), 2)} ms)`,
    );
    line(`${withSlow.peaks.peakRss <= bound ? 'PASS' : 'FAIL'}  gateway RSS under the bound from limits.maxBufferedBytes: peak ${fmt(withSlow.peaks.peakRss / MiB, 1)} MiB <= ${fmt(bound / MiB, 1)} MiB`);
    line(`${cut === HEAVY ? 'PASS' : 'FAIL'}  the ${HEAVY} large-stream readers were cut off and the ${SLOW - HEAVY} others not (positive control: the bound was reached): ${cut} cut`);
    const lost = without.lost + withSlow.lost + after.lost;
    const dups = without.duplicates + withSlow.duplicates + after.duplicates;
    line(`${lost + dups === 0 ? 'PASS' : 'FAIL'}  reading sockets: 0 lost, 0 duplicates (warm-ups included): ${lost} lost, ${dups} duplicates`);
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
