/**
 * The load side of a run: client workers (forked processes holding the sockets), the
 * subscription plan (who listens to which PHIDs, and so who must receive each message),
 * and the publisher (keep-alive HTTP at a target rate). One publish phase is `runPhase`.
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMicros, schedStat } from './processes.mjs';
import { createRandom, nowMicros, percentile, pickDistinct, sleep } from './stats.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const phidOf = (k) => `PHID-USER-${String(k).padStart(20, '0')}`;

/**
 * A forked load worker (client-worker.mjs unless `script` names another in bench/, with extra
 * node flags) and a request/answer helper over IPC.
 */
export function startWorker(nodeArgs = [], script = 'client-worker.mjs') {
  const child = fork(join(HERE, script), [], { execArgv: nodeArgs, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiters = [];
  child.on('message', (msg) => {
    const i = waiters.findIndex((w) => w.type === msg.type);
    if (i !== -1) waiters.splice(i, 1)[0].resolve(msg);
  });
  const exited = new Promise((res) => child.once('exit', res));
  const ask = (cmd, answer, timeoutMs = 120_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client worker: no '${answer}' within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({ type: answer, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      child.send(cmd);
    });
  return {
    pid: child.pid,
    ask,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await ask({ type: 'close' }, 'closed', 10_000).catch(() => {});
      await Promise.race([exited, sleep(3_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * A group of sockets of one instance and one transport: socket i listens to 3 of `count`
 * PHIDs, and is placed on node i mod nodes. Returns the socket specs and the index
 * PHID -> socket ids that tells who must receive a message.
 */
export function planGroup({ firstId, count, instance, transport, nodes, seed, sioClient }) {
  const random = createRandom(seed);
  const specs = [];
  const listeners = new Map();
  for (let i = 0; i < count; i++) {
    const id = firstId + i;
    const node = i % nodes.length;
    const phids = pickDistinct(random, count, 3).map(phidOf);
    for (const p of phids) {
      let list = listeners.get(p);
      if (!list) listeners.set(p, (list = []));
      list.push(id);
    }
    const port = nodes[node].clientPort;
    specs.push(
      transport === 'raw'
        ? { id, transport, node, instance, phids, url: `ws://127.0.0.1:${port}/~${instance}/` }
        : { id, transport, node, instance, phids, baseUrl: `http://127.0.0.1:${port}`, path: '/socket.io/', client: sioClient },
    );
  }
  return { instance, transport, count, specs, listeners, random: createRandom(seed ^ 0x5eed) };
}

/** Spreads specs over the workers and waits until every socket is connected and subscribed. */
export async function connectGroup(workers, group, concurrency = 100) {
  const shares = workers.map(() => []);
  group.specs.forEach((s, i) => shares[i % workers.length].push(s));
  const started = Date.now();
  const answers = await Promise.all(
    workers.map((w, i) => w.ask({ type: 'connect', sockets: shares[i], concurrency }, 'connected', 300_000)),
  );
  const failed = answers.reduce((n, a) => n + a.failed, 0);
  if (failed) throw new Error(`${failed} of ${group.count} ${group.transport} sockets failed to connect: ${answers.find((a) => a.firstError)?.firstError}`);
  return Date.now() - started;
}

/**
 * Publishes `rate` messages per second for `seconds` (round robin over `targets`, each an
 * admin port), addressed to 5 (phidsPerMessage) random PHIDs of the group, then waits for the deliveries.
 * Returns the figures of the phase. CPU is read from every node over the phase only.
 */
export async function runPhase({ workers, group, nodes, targets, rate, seconds, seq0, label, phidsPerMessage = 5, others = [] }) {
  const total = Math.max(1, Math.round(rate * seconds));
  await Promise.all(workers.map((w) => w.ask({ type: 'reset', seq0, count: total }, 'reset')));
  // Enough keep-alive sockets that a publish never waits in the agent for one (that wait would
  // count as latency): with Redis a publish is answered only once shared history has it.
  const agents = targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 128 }));
  const expected = new Map();
  let expectedTotal = 0;
  let sent = 0;
  let answered = 0;
  let inflight = 0;
  let publishErrors = 0;
  let firstError = null;
  let lagged = 0;
  let retries = 0;
  const maxInflight = 1024;
  let queued = 0;
  const busy = targets.map(() => 0);

  /** POSTs one body; a keep-alive socket the server closed just then is retried once (Node's advice). */
  const post = (t, instance, body, retried) => {
    if (busy[t] >= 128) queued++;
    busy[t]++;
    const req = http.request(
      {
        agent: agents[t],
        host: '127.0.0.1',
        port: targets[t].adminPort,
        method: 'POST',
        path: `/?instance=${encodeURIComponent(instance)}`,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          busy[t]--;
          inflight--;
          answered++;
          if (res.statusCode !== 200) {
            publishErrors++;
            firstError ??= `HTTP ${res.statusCode}`;
          }
        });
      },
    );
    req.on('error', (err) => {
      busy[t]--;
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
        retries++;
        post(t, instance, body, true);
        return;
      }
      inflight--;
      answered++;
      publishErrors++;
      firstError ??= err.message;
    });
    req.end(body);
  };

  const publishOne = (seq) => {
    const t = seq % targets.length;
    const picks = pickDistinct(group.random, group.count, phidsPerMessage).map((k) => `PHID-USER-${String(k).padStart(20, '0')}`);
    const recipients = new Set();
    for (const p of picks) for (const id of group.listeners.get(p) ?? []) recipients.add(id);
    expected.set(seq, recipients.size);
    expectedTotal += recipients.size;
    const body = JSON.stringify({
      type: 'notification',
      key: String(seq),
      subscribers: picks,
      uniqueID: `bench${String(seq).padStart(27, '0')}`,
      seq,
      via: nodes.indexOf(targets[t]),
      sentAt: nowMicros(),
    });
    inflight++;
    post(t, group.instance, body, false);
  };

  // The load side's own CPU (publisher, client workers, Redis), to tell when it is the bottleneck.
  const sideCpu = () => {
    const self = process.cpuUsage();
    const sum = (c) => c.user + c.system;
    return [self.user + self.system, ...workers.map((w) => sum(cpuMicros(w.pid))), ...others.map((o) => sum(cpuMicros(o.pid)))];
  };
  const side0 = sideCpu();
  const loadAtStart = loadavg()[0];
  const cpu0 = nodes.map((n) => n.cpuMicros());
  const sched0 = nodes.map((n) => schedStat(n.pid));
  const t0 = performance.now();
  const deadline = t0 + (seconds + 15) * 1000;
  // Paced in 1 ms ticks: each tick sends what is due by now, bounded by count and time.
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) / 1000) * rate) + 1);
      while (sent < due && inflight < maxInflight) publishOne(seq0 + sent++);
      if (sent < due) lagged++;
      if ((sent >= total && inflight === 0) || now > deadline) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const publishMs = performance.now() - t0;
  // Wait for the deliveries (bounded): what has not arrived 5 s after the last answer is lost.
  const drainDeadline = Date.now() + 5_000;
  let received = 0;
  while (Date.now() < drainDeadline) {
    const progress = await Promise.all(workers.map((w) => w.ask({ type: 'progress' }, 'progress')));
    received = progress.reduce((n, p) => n + p.received, 0);
    if (received >= expectedTotal) break;
    await sleep(50);
  }
  const cpu1 = nodes.map((n) => n.cpuMicros());
  const sched1 = nodes.map((n) => schedStat(n.pid));
  const spanMs = performance.now() - t0;
  const side1 = sideCpu();
  const load = side1.map((c, i) => (c - side0[i]) / (spanMs * 10)); // percent of one core
  for (const a of agents) a.destroy();

  const results = await Promise.all(workers.map((w) => w.ask({ type: 'collect' }, 'results')));
  const latencies = {};
  const got = new Map();
  let duplicates = 0;
  let misdelivered = 0;
  for (const r of results) {
    duplicates += r.duplicates;
    misdelivered += r.misdelivered;
    for (const [g, values] of Object.entries(r.latencies)) (latencies[g] ??= []).push(...values);
    for (const [seq, n] of r.perSeq) got.set(seq, (got.get(seq) ?? 0) + n);
  }
  let lost = 0;
  let extra = 0;
  let deliveries = 0;
  for (const [seq, want] of expected) {
    const n = got.get(seq) ?? 0;
    deliveries += n;
    if (n < want) lost += want - n;
    if (n > want) extra += n - want;
  }
  const latency = {};
  for (const [g, values] of Object.entries(latencies)) {
    latency[g] = { count: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: percentile(values, 100) };
  }
  return {
    label,
    transport: group.transport,
    connections: group.count,
    rateTarget: rate,
    published: sent,
    publishRate: (sent / publishMs) * 1000,
    publishErrors,
    retries,
    queued,
    firstError,
    lagged,
    expectedDeliveries: expectedTotal,
    deliveries,
    deliveriesPerSecond: (deliveries / spanMs) * 1000,
    lost,
    duplicates,
    misdelivered: Math.max(misdelivered, extra),
    latency,
    /** The latencies themselves (us) per group, for pooling phases. */
    samples: latencies,
    cpuPerMessage: nodes.map((n, i) => (cpu1[i].user + cpu1[i].system - cpu0[i].user - cpu0[i].system) / Math.max(1, sent)),
    systemPerMessage: nodes.map((n, i) => (cpu1[i].system - cpu0[i].system) / Math.max(1, sent)),
    // How long each gateway's event loop sat runnable but without a CPU: the machine's share
    // of the latency (every hop of a delivery starts with such a wake-up).
    runQueue: nodes.map((n, i) => {
      const slices = sched1[i].slices - sched0[i].slices;
      const waitNs = sched1[i].waitNs - sched0[i].waitNs;
      return { perWakeupUs: slices > 0 ? waitNs / slices / 1000 : NaN, wakeupsPerSecond: (slices / spanMs) * 1000, percent: (waitNs / 1e6 / spanMs) * 100 };
    }),
    nextSeq: seq0 + sent,
    loadAverage: Math.max(loadAtStart, loadavg()[0]),
    loadSide: {
      publisher: load[0],
      workers: load.slice(1, 1 + workers.length),
      others: others.map((o, i) => ({ name: o.name, percent: load[1 + workers.length + i] })),
    },
  };
}
