/**
 * What the scale bench reads from the processes it started, as snapshots whose differences
 * are the figures of a phase:
 * - CPU time of a process in nanoseconds: the sum over its threads of the time on a CPU from
 *   /proc/PID/task/TID/schedstat. /proc/PID/stat (bench/processes.mjs cpuMicros) counts in
 *   clock ticks of 10 ms; a gateway without recipients spends a few ms in a 10 s phase, so
 *   ticks cannot resolve a 2% share. Both are read: the ticks stay as a cross-check.
 * - Redis: INFO stats and commandstats over a connection of the bench's own (bytes sent,
 *   commands per name). The reply to the first INFO of a pair is sent between the two
 *   readings, so its length is taken off the bytes; nothing else of the bench's reads Redis.
 * - A gateway's /status/ counters: publishes accepted, deliveries, bus copies decoded and
 *   own echoes dropped; and from its /metrics, how many mark-compact collections it ran.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import Redis from 'ioredis';
import { cpuMicros } from './processes.mjs';

/** CPU time of every thread of a process, ns (threads that exited during a phase are not counted; a gateway's are long-lived). */
export function cpuNanos(pid) {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return total;
}

/** Both CPU readings of a process: precise (ns, schedstat) and ticks (us, /proc/PID/stat). */
export function cpuReading(pid) {
  const ticks = cpuMicros(pid);
  return { ns: cpuNanos(pid), tickUs: ticks.user + ticks.system };
}

export function cpuDelta(a, b) {
  return { us: (b.ns - a.ns) / 1000, tickUs: b.tickUs - a.tickUs };
}

/** GET a gateway's /status/ (instance default) as JSON. */
export function gatewayStatus(node) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: node.adminPort, path: '/status/' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${node.name} /status/: HTTP ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/**
 * Major and incremental (mark-compact) collections a gateway has run, from its /metrics
 * (prom-client counts V8's GC events). An idle Node process runs V8's memory reducer a few
 * seconds after its last mark-compact: 30-100 ms of GC on this VM, once, which in a 10 s
 * phase would be most of what a gateway without recipients spends. The bench waits for
 * those to pass (scale.mjs settle) and shows the count of every phase.
 */
export async function majorGcs(node) {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/metrics`);
  const text = await res.text();
  let n = 0;
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_count\{[^}]*kind="(major|incremental)"[^}]*\} (\d+)/gm)) n += Number(m[2]);
  return n;
}

/** The counters of one gateway that the figures divide by. */
async function gatewayCounters(node) {
  const [s, gcs] = await Promise.all([gatewayStatus(node), majorGcs(node)]);
  return {
    accepted: s['messages.in'],
    deliveries: s['messages.out'],
    decoded: s.bus?.received ?? 0,
    echoes: s.bus?.echoesDropped ?? 0,
    gcs,
  };
}

/** A reader of a redis-server's INFO over one connection of its own. */
export async function openRedisMeter(redis) {
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  await client.connect();
  return {
    /** Bytes sent so far, commands by name, and the length of this reply on the wire (sent after the figures in it). */
    async read() {
      const text = await client.info('stats', 'commandstats');
      const field = (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      const calls = {};
      for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
      const bytes = Buffer.byteLength(text);
      return { outputBytes: field('total_net_output_bytes'), calls, replyBytes: bytes + `$${bytes}\r\n\r\n`.length };
    },
    close: () => client.quit().catch(() => client.disconnect()),
  };
}

/**
 * A snapshot of everything a phase is measured by: each gateway's CPU and counters, Redis's
 * CPU and INFO, and the time. Taken again after the phase, `diff` turns two into figures.
 * The /status/ requests cost a gateway CPU too (about as much as a gateway without
 * recipients spends in a second): at the start they are read before the CPU, at the end
 * after it, so neither falls inside the window.
 */
export async function snapshot({ gateways, redis, redisMeter }, when) {
  const read = () => Promise.all([redisMeter.read(), Promise.all(gateways.map(gatewayCounters))]);
  const cpuNow = () => ({ at: performance.now(), cpu: gateways.map((g) => cpuReading(g.pid)), redisCpu: cpuReading(redis.pid) });
  if (when === 'start') {
    const [info, counters] = await read();
    return { ...cpuNow(), info, counters };
  }
  const cpu = cpuNow();
  const [info, counters] = await read();
  return { ...cpu, info, counters };
}

export function diff(a, b) {
  const calls = {};
  for (const [name, n] of Object.entries(b.info.calls)) calls[name] = n - (a.info.calls[name] ?? 0);
  return {
    seconds: (b.at - a.at) / 1000,
    gatewayCpu: b.cpu.map((c, i) => cpuDelta(a.cpu[i], c)),
    redisCpu: cpuDelta(a.redisCpu, b.redisCpu),
    // The bench's own first INFO reply crossed Redis's socket between the two readings.
    redisBytes: b.info.outputBytes - a.info.outputBytes - a.info.replyBytes,
    redisCalls: calls,
    counters: b.counters.map((c, i) => ({
      accepted: c.accepted - a.counters[i].accepted,
      deliveries: c.deliveries - a.counters[i].deliveries,
      decoded: c.decoded - a.counters[i].decoded,
      echoes: c.echoes - a.counters[i].echoes,
      gcs: c.gcs - a.counters[i].gcs,
    })),
  };
}
