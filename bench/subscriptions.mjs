#!/usr/bin/env node
/**
 * Memory per subscription: what one (socket, PHID) subscription costs a gateway, for this
 * checkout and for a reference build of the gateway (another git ref, built in a temporary
 * worktree), measured in the same run with the same load, and the ratio of the two.
 *
 *   npm run build && node bench/subscriptions.mjs          # 200 sockets x 10,000 PHIDs, baseline = merge-base with main
 *   node bench/run.mjs --scenario subscriptions [flags]     # the same
 *   node bench/subscriptions.mjs --baseline HEAD~3 --sockets 100 --phids 5000
 *   node bench/subscriptions.mjs --help
 *
 * For every transport (raw Aphlict WebSockets, Socket.IO), shape (distinct PHIDs per socket,
 * or one set of PHIDs shared by every socket) and build (reference, this checkout), a fresh
 * gateway with the default config (but for the per-socket cap, set to K):
 * - S sockets connect (a ping round trip each, or the Socket.IO connect); after 1 s, full
 *   GCs in the gateway (a bench-only preload, gc-on-signal.cjs) and figures A;
 * - every socket subscribes to K Phorge-style PHIDs (30 characters), a few sockets at a time,
 *   in frames within the default limits.maxFrameBytes (64 KiB: ~1,800 PHIDs a frame),
 *   confirmed by a pong after its subscribe frames (Socket.IO: every subscribe acked);
 * - figures B after a settle time, with no forced GC (as a gateway runs), then full GCs and
 *   figures C (what is live);
 * - one publish to a subscribed PHID checks that the subscriptions are real: it reaches its
 *   owner (distinct) or every socket (shared), and nobody else.
 * A figure is VmRSS from /proc and V8's heap used (nodejs_heap_size_used_bytes from the
 * gateway's /metrics). Per subscription: (B - A) / (S x K) and (C - A) / (S x K).
 */
import http from 'node:http';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { buildBaseline, defaultBaselineRef } from './baseline.mjs';
import { GATEWAY_MAIN, machineLoad, startGateway } from './processes.mjs';
import { connectSocketIo, socketIoClientKind } from './sio-client.mjs';
import { fmt, markdownTable, sleep } from './stats.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const GC_PRELOAD = join(HERE, 'gc-on-signal.cjs');
const INSTANCE = 'bench';

const USAGE = `usage: node bench/subscriptions.mjs [flags]   (or node bench/run.mjs --scenario subscriptions [flags])
  --sockets S          raw sockets per gateway (200)
  --phids K            PHIDs each socket subscribes to (10000; the gateway's cap is set to K)
  --sio-sockets S      Socket.IO clients per gateway (as --sockets)
  --sio-phids K        PHIDs per Socket.IO client (as --phids)
  --transports LIST    raw,socketio (both)
  --shapes LIST        distinct,shared (both): distinct PHIDs per socket, or the same K for all
  --baseline REF       git ref of the reference build (default: git merge-base HEAD main, i.e. the
                       code before this branch; HEAD when there is no main); none: this checkout only
  --settle S           seconds between the last subscribe and figures B (5)
  --concurrency N      sockets subscribing at once (8)
  --sio-client KIND    auto (socket.io-client when installed) or minimal
  --gateway-node-args="A B"  extra node flags for the gateways`;

/** A Phorge-style PHID: 'PHID-USER-' and 20 characters, one per integer. */
const phidOf = (n) => `PHID-USER-${n.toString(36).padStart(20, '0')}`;

/** The PHIDs socket `s` subscribes to: its own block (distinct) or the same block for all (shared). */
function phidsOf(shape, s, k) {
  const first = shape === 'distinct' ? s * k : 0;
  return Array.from({ length: k }, (_, j) => phidOf(first + j));
}

/**
 * The gateway's default limits.maxFrameBytes (64 KiB) applies: a socket's PHIDs go out in
 * several subscribe frames (raw) or events (Socket.IO) of at most this many bytes, as a
 * client with many PHIDs must send them.
 */
const FRAME_BUDGET = 60_000;

/** PHIDs split into lists whose subscribe frame stays within FRAME_BUDGET. */
function chunked(phids) {
  const out = [];
  let chunk = [];
  let bytes = 64; // the frame's envelope, {"command":"subscribe","data":[]} or 42N["subscribe",[]]
  for (const phid of phids) {
    if (chunk.length && bytes + phid.length + 3 > FRAME_BUDGET) {
      out.push(chunk);
      chunk = [];
      bytes = 64;
    }
    chunk.push(phid);
    bytes += phid.length + 3;
  }
  if (chunk.length) out.push(chunk);
  return out;
}

const subscribeFrame = (phids) => JSON.stringify({ command: 'subscribe', data: phids });

function get(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${path}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

function post(port, path, message) {
  const body = JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`POST ${path}: ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A Prometheus sample of the gateway's /metrics (first series of that name). */
async function metric(node, name) {
  const text = await get(node.adminPort, '/metrics');
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`/metrics has no ${name}`);
  return Number(m[1]);
}

async function figures(node) {
  return { rss: node.rssBytes(), heap: await metric(node, 'nodejs_heap_size_used_bytes') };
}

/** Full GCs in the gateway (gc-on-signal.cjs); waits until /metrics has counted them. */
async function forceGc(node) {
  const majors = () => metric(node, 'nodejs_gc_duration_seconds_count\\{[^}]*kind="major"[^}]*\\}').catch(() => NaN);
  const before = await majors();
  process.kill(node.pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  // prom-client counts GCs from a PerformanceObserver; without it, a fixed wait.
  while (Date.now() < deadline) {
    await sleep(200);
    const now = await majors();
    if (Number.isNaN(now) || Number.isNaN(before)) {
      await sleep(1_000);
      break;
    }
    if (now >= before + 2) break;
  }
  await sleep(200);
}

/** Runs `fn` over `items` with at most `n` at once. */
async function eachLimited(items, n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

/** A raw Aphlict socket; resolves once a pong shows it is open and read. */
function openRaw(url, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const client = {
      received: 0,
      pongs: [],
      ws,
      close: () => ws.terminate(),
      /** Sends frames, then a ping; resolves on its pong (frames are read in order). */
      roundTrip(frames = []) {
        return new Promise((res, rej) => {
          const timer = setTimeout(() => rej(new Error('raw socket: no pong within 120 s')), 120_000);
          client.pongs.push(() => (clearTimeout(timer), res()));
          for (const f of frames) ws.send(f);
          ws.send(JSON.stringify({ command: 'ping', data: null }));
        });
      },
    };
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('raw socket: not open in time'))), timeoutMs);
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'pong') client.pongs.shift()?.();
      else client.received++;
    });
    ws.on('error', (err) => (clearTimeout(timer), reject(err)));
    ws.on('close', () => clearTimeout(timer));
    ws.on('open', () => {
      clearTimeout(timer);
      client.roundTrip().then(() => resolve(client), reject);
    });
  });
}

/** The sockets of one measurement: connect all, then subscribe each to its PHIDs. */
function rawClients(node) {
  const clients = [];
  return {
    async connect(count) {
      await eachLimited(Array.from({ length: count }, (_, i) => i), 50, async (_, i) => {
        clients[i] = await openRaw(`${node.clientUrl}/~${INSTANCE}/`);
      });
    },
    /** All subscribe frames, then a ping: its pong means the gateway has read them all. */
    async subscribe(i, chunks, frames = chunks.map(subscribeFrame)) {
      await clients[i].roundTrip(frames);
    },
    received: (i) => clients[i].received,
    close: () => clients.forEach((c) => c?.close()),
  };
}

/** Socket.IO clients: connected with no PHIDs, then subscribe events, each acked. */
function sioClients(node, sioClient) {
  const clients = [];
  const counts = [];
  return {
    async connect(count) {
      await eachLimited(Array.from({ length: count }, (_, i) => i), 50, async (_, i) => {
        counts[i] = 0;
        const spec = { baseUrl: `http://127.0.0.1:${node.clientPort}`, path: '/socket.io/', instance: INSTANCE, phids: [], client: sioClient };
        clients[i] = await connectSocketIo(spec, () => counts[i]++, 120_000);
      });
    },
    async subscribe(i, chunks) {
      await Promise.all(chunks.map((phids) => clients[i].subscribe(phids)));
    },
    received: (i) => counts[i],
    close: () => clients.forEach((c) => c?.close()),
  };
}

/** One gateway, one transport, one shape: the figures per subscription. */
async function measure({ main, build, transport, shape, sockets, phids, settleS, concurrency, sioClient, nodeArgs, started }) {
  const node = await startGateway({
    name: `${build}-${transport}-${shape}`,
    main,
    nodeArgs: [...nodeArgs, '--expose-gc', '--require', GC_PRELOAD],
    // The default config but for the cap (10,000 by default), which must admit K PHIDs.
    config: { limits: { maxSubscriptionsPerSocket: Math.max(phids, 1) } },
  });
  started.add(node);
  const clients = transport === 'raw' ? rawClients(node) : sioClients(node, sioClient);
  try {
    await clients.connect(sockets);
    // The start: connected, idle, and without the garbage of starting and connecting.
    await sleep(1_000);
    await forceGc(node);
    const a = await figures(node);
    const t0 = Date.now();
    // Shared: every socket sends the very same text (the gateway parses its own copy of each).
    const shared = shape === 'shared' ? chunked(phidsOf(shape, 0, phids)) : undefined;
    const sharedFrames = shared?.map(subscribeFrame);
    await eachLimited(Array.from({ length: sockets }, (_, i) => i), concurrency, async (_, s) => {
      if (shared) await clients.subscribe(s, shared, sharedFrames);
      else await clients.subscribe(s, chunked(phidsOf(shape, s, phids)));
    });
    const subscribeMs = Date.now() - t0;
    await sleep(settleS * 1_000);
    const b = await figures(node);
    await forceGc(node);
    const c = await figures(node);
    // The subscriptions are real: a publish to the last socket's last PHID reaches its owner
    // (distinct) or every socket (shared), and nobody else.
    const last = sockets - 1;
    const target = phidOf(shape === 'distinct' ? last * phids + phids - 1 : phids - 1);
    const before = Array.from({ length: sockets }, (_, i) => clients.received(i));
    await post(node.adminPort, `/?instance=${INSTANCE}`, { type: 'notification', key: '1', subscribers: [target] });
    await sleep(500);
    const got = Array.from({ length: sockets }, (_, i) => clients.received(i) - before[i]);
    const expected = got.map((_, i) => (shape === 'shared' || i === last ? 1 : 0));
    const checkOk = got.every((n, i) => n === expected[i]);
    const n = sockets * phids;
    return {
      build,
      transport,
      shape,
      subscriptions: n,
      subscribeMs,
      rss: (b.rss - a.rss) / n,
      heap: (b.heap - a.heap) / n,
      rssGc: (c.rss - a.rss) / n,
      heapGc: (c.heap - a.heap) / n,
      rssGrowth: b.rss - a.rss,
      checkOk,
      check: `${got.reduce((x, y) => x + y, 0)} sockets got the check publish, expected ${expected.reduce((x, y) => x + y, 0)}${checkOk ? '' : ' (WRONG SOCKETS)'}`,
    };
  } finally {
    clients.close();
    await node.stop();
    started.delete(node);
  }
}

export async function runSubscriptionsBench(argv) {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      sockets: { type: 'string', default: '200' },
      phids: { type: 'string', default: '10000' },
      'sio-sockets': { type: 'string' },
      'sio-phids': { type: 'string' },
      transports: { type: 'string', default: 'raw,socketio' },
      shapes: { type: 'string', default: 'distinct,shared' },
      baseline: { type: 'string' },
      settle: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '8' },
      'sio-client': { type: 'string', default: 'auto' },
      'gateway-node-args': { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
  });
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build first`);
  const line = (s = '') => console.log(s);
  const sizes = {
    raw: { sockets: Number(args.sockets), phids: Number(args.phids) },
    socketio: { sockets: Number(args['sio-sockets'] ?? args.sockets), phids: Number(args['sio-phids'] ?? args.phids) },
  };
  const transports = args.transports.split(',');
  const shapes = args.shapes.split(',');
  const nodeArgs = args['gateway-node-args'].split(' ').filter(Boolean);
  const started = new Set();
  const stopAll = () => Promise.all([...started].map((n) => n.stop()));
  let baseline;
  const onSignal = (code) => () => {
    void stopAll().finally(() => {
      baseline?.remove();
      process.exit(code);
    });
  };
  const onInt = onSignal(130);
  const onTerm = onSignal(143);
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  // A crash (say, EPIPE when the output is piped into `head`) skips the finally below: still
  // kill the gateways this run started and remove the reference worktree, synchronously.
  const onExit = () => {
    for (const n of started) {
      try {
        process.kill(n.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(n.dir, { recursive: true, force: true });
    }
    baseline?.remove();
  };
  process.once('exit', onExit);

  line(`Tidings subscription memory bench: node ${process.version}, started ${new Date().toISOString()}`);
  line(`load: ${machineLoad()}`);
  for (const t of transports) {
    if (sizes[t].sockets * sizes[t].phids < 1_000_000) {
      line(`note: ${t}: ${fmt(sizes[t].sockets * sizes[t].phids)} subscriptions; below ~1,000,000 the 20-25 MiB of RSS that does not grow with subscriptions weighs on the figures`);
    }
  }
  try {
    const ref = args.baseline ?? defaultBaselineRef();
    const builds = [];
    if (ref !== 'none') {
      const t0 = Date.now();
      baseline = buildBaseline(ref, line);
      line(`baseline: ${ref} = ${baseline.commit.slice(0, 12)} "${baseline.subject}", built in ${fmt((Date.now() - t0) / 1000, 1)} s in ${baseline.dir}`);
      builds.push({ build: 'baseline', main: baseline.main });
    }
    builds.push({ build: 'this checkout', main: GATEWAY_MAIN });
    const kind = await socketIoClientKind(args['sio-client']);
    const results = [];
    for (const transport of transports) {
      const { sockets, phids } = sizes[transport];
      for (const shape of shapes) {
        line(`\n## ${transport === 'raw' ? 'raw Aphlict sockets' : `Socket.IO (${kind})`}, ${shape} PHIDs: ${fmt(sockets)} sockets x ${fmt(phids)} PHIDs = ${fmt(sockets * phids)} subscriptions`);
        for (const { build, main } of builds) {
          const r = await measure({ main, build, transport, shape, sockets, phids, settleS: Number(args.settle), concurrency: Number(args.concurrency), sioClient: args['sio-client'], nodeArgs, started });
          results.push(r);
          line(`  ${build}: RSS ${r.rssGrowth >= 0 ? '+' : ''}${fmt(r.rssGrowth / 1048576, 1)} MiB = ${fmt(r.rss, 1)} B/subscription, heap ${fmt(r.heap, 1)} B; after full GC: RSS ${fmt(r.rssGc, 1)} B, heap ${fmt(r.heapGc, 1)} B; subscribed in ${fmt(r.subscribeMs / 1000, 1)} s; check: ${r.check}; load ${machineLoad().replace(/.*load average: /, '')}`);
        }
      }
    }
    line(`\n# Bytes per subscription (finished ${new Date().toISOString()}; load: ${machineLoad()})\n`);
    const rows = [];
    const goals = [];
    for (const transport of transports) {
      for (const shape of shapes) {
        const mine = results.find((r) => r.transport === transport && r.shape === shape && r.build === 'this checkout');
        const base = results.find((r) => r.transport === transport && r.shape === shape && r.build === 'baseline');
        const ratio = (key) => (base ? fmt(mine[key] / base[key], 2) : '-');
        rows.push([transport, shape, fmt(mine.subscriptions), base ? fmt(base.rss, 1) : '-', fmt(mine.rss, 1), ratio('rss'), base ? fmt(base.heap, 1) : '-', fmt(mine.heap, 1), ratio('heap'), base ? fmt(base.heapGc, 1) : '-', fmt(mine.heapGc, 1), ratio('heapGc')]);
        if (base && transport === 'raw') {
          goals.push([`raw, ${shape} PHIDs: RSS bytes per subscription <= 0.5 x baseline`, `${fmt(mine.rss, 1)} vs ${fmt(base.rss, 1)} B (x${fmt(mine.rss / base.rss, 2)})`, mine.rss <= 0.5 * base.rss]);
          goals.push([`raw, ${shape} PHIDs: live heap bytes per subscription (after full GC) <= 0.5 x baseline`, `${fmt(mine.heapGc, 1)} vs ${fmt(base.heapGc, 1)} B (x${fmt(mine.heapGc / base.heapGc, 2)})`, mine.heapGc <= 0.5 * base.heapGc]);
        }
      }
    }
    line(markdownTable(['transport', 'shape', 'subscriptions', 'RSS B/sub baseline', 'RSS B/sub now', 'ratio', 'heap B/sub baseline', 'heap B/sub now', 'ratio', 'live heap (GC) baseline', 'live heap (GC) now', 'ratio'], rows));
    const checks = results.filter((r) => !r.checkOk);
    goals.push(['every check publish reached exactly its subscribers', checks.length ? checks.map((r) => `${r.build} ${r.transport} ${r.shape}: ${r.check}`).join('; ') : `${results.length} of ${results.length} runs`, !checks.length]);
    line('\n# Goals');
    for (const [goal, measured, pass] of goals) line(`${pass ? 'PASS' : 'FAIL'}  ${goal}: ${measured}`);
  } finally {
    await stopAll();
    baseline?.remove();
    process.removeListener('exit', onExit);
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runSubscriptionsBench(process.argv.slice(2)).catch((err) => {
    console.error(`bench failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  });
}
