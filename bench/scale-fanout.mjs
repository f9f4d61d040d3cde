/**
 * What one more copy of a message costs Redis, measured on a private redis-server alone:
 * between two whole clusters the machine's drift (a busy VM makes Redis handle several
 * requests per wake-up) is larger than a copy's cost, so here nothing changes between
 * phases but the number of copies, and the phases alternate.
 *
 * - broadcast: one PUBLISH to a channel with k subscribers (the broadcast bus);
 * - interest: one script that, for each of k channels with one subscriber each, reads a
 *   lease with HGET and PUBLISHes (what the interest bus's route script does per gateway).
 * Subscribers are raw TCP connections that subscribe and discard what they read, so the
 * bench's own parsing costs nothing. The payload is as long as a bus copy of a bench message.
 * Redis CPU from /proc/PID/task/TID/schedstat (scale-meters cpuReading).
 */
import net from 'node:net';
import Redis from 'ioredis';
import { startRedis } from './processes.mjs';
import { cpuDelta, cpuReading } from './scale-meters.mjs';
import { median, sleep } from './stats.mjs';
import { line as fitLine } from './scale-model.mjs';

const ROUTE_LUA = `
for i = 1, #KEYS do
  local lease = tonumber(redis.call('HGET', 'fanout:leases', KEYS[i]) or '0')
  if lease >= 0 then redis.call('PUBLISH', KEYS[i], ARGV[1]) end
end
return 1
`;

/** A subscriber that reads and drops everything (RESP SUBSCRIBE written by hand). */
function rawSubscriber(port, channel) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n`);
      socket.once('data', () => resolve(socket));
      socket.on('data', () => {});
    });
  });
}

/**
 * Redis CPU per publish for each k in `ks`, both styles, alternating, `cycles` times.
 * Returns {broadcast: {perCopy, perPublish, points}, interest: {...}}.
 */
export async function redisFanoutCost({ rate = 2000, ks = [1, 4, 16], cycles = 3, seconds = 3, payloadBytes = 800, log = () => {} }) {
  const redis = await startRedis();
  const client = new Redis(redis.url, { lazyConnect: true });
  const sockets = [];
  try {
    await client.connect();
    const port = Number(new URL(redis.url).port);
    client.defineCommand('fanoutRoute', { lua: ROUTE_LUA });
    const maxK = Math.max(...ks);
    // broadcast: maxK subscribers on 'fanout:all:k' channels, one channel per k (so unused
    // subscribers of another k are idle); interest: one channel per copy.
    for (const k of ks) for (let i = 0; i < k; i++) sockets.push(await rawSubscriber(port, `fanout:all:${k}`));
    for (let i = 0; i < maxK; i++) sockets.push(await rawSubscriber(port, `fanout:one:${i}`));
    await client.hset('fanout:leases', ...Array.from({ length: maxK }, (_, i) => [`fanout:one:${i}`, String(Date.now())]).flat());
    const payload = 'x'.repeat(payloadBytes);
    const send = {
      broadcast: (k) => client.publish(`fanout:all:${k}`, payload),
      interest: (k) => client.fanoutRoute(k, ...Array.from({ length: k }, (_, i) => `fanout:one:${i}`), payload),
    };
    const samples = { broadcast: new Map(), interest: new Map() };
    for (let c = 0; c < cycles; c++) {
      for (const k of c % 2 ? [...ks].reverse() : ks) {
        for (const style of c % 2 ? ['interest', 'broadcast'] : ['broadcast', 'interest']) {
          const total = Math.round(rate * seconds);
          const c0 = cpuReading(redis.pid);
          const t0 = performance.now();
          let sent = 0;
          const pending = [];
          while (sent < total && performance.now() - t0 < (seconds + 10) * 1000) {
            const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
            while (sent < due) {
              pending.push(send[style](k));
              sent++;
            }
            await sleep(1);
          }
          await Promise.all(pending);
          const us = cpuDelta(c0, cpuReading(redis.pid)).us / sent;
          const list = samples[style].get(k) ?? [];
          list.push(us);
          samples[style].set(k, list);
        }
      }
    }
    const out = {};
    for (const style of ['broadcast', 'interest']) {
      const points = ks.map((k) => [k, median(samples[style].get(k))]);
      const l = fitLine(points);
      out[style] = { perCopy: l.b, perPublish: l.a, r2: l.r2, points, samples: Object.fromEntries(samples[style]) };
      log(`  ${style}: ${points.map(([k, us]) => `${k} copies ${us.toFixed(1)} us`).join(', ')} per publish (medians of ${cycles}); ${l.b.toFixed(2)} us per copy (r² ${l.r2.toFixed(2)})`);
    }
    return out;
  } finally {
    for (const s of sockets) s.destroy();
    client.disconnect();
    await redis.stop();
  }
}
