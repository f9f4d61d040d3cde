/**
 * References that show the machine's own state beside the gateway's figures:
 * - CPU: what a bare node:http server (a child process that reads the body and answers 200)
 *   costs per request right now, under the same keep-alive POSTs at the same rate. On this VM
 *   that drifts by a third within a day (kernel and wake-up costs, not JavaScript), and the
 *   gateway's figure drifts with it.
 * - Latency: a loopback TCP round trip between two processes, once per millisecond, during a
 *   phase: the scheduling tail any hop pays under that load.
 */
import http from 'node:http';
import net from 'node:net';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuMicros } from './processes.mjs';
import { sleep } from './stats.mjs';

const SELF = fileURLToPath(import.meta.url);

if (process.argv[2] === 'serve') {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
      res.end('{}');
    });
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
  process.on('disconnect', () => process.exit(0));
}

/** CPU microseconds per request of a bare node:http server at `rate` requests/s for `seconds`. */
export async function bareHttpCpuPerRequest({ rate, seconds, bodyBytes = 330 }) {
  // The gateway's own node flags (none), not the load side's --single-threaded-gc.
  const child = fork(SELF, ['serve'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', () => reject(new Error('bare http reference server exited')));
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
    const body = JSON.stringify({ type: 'notification', pad: 'x'.repeat(Math.max(0, bodyBytes - 40)) });
    const post = () =>
      new Promise((resolve) => {
        const req = http.request(
          { agent, host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
          (res) => res.resume().on('end', resolve),
        );
        req.on('error', resolve);
        req.end(body);
      });
    const paced = async (count) => {
      const t0 = performance.now();
      const deadline = t0 + (count / rate + 10) * 1000;
      let sent = 0;
      const pending = [];
      while (sent < count && performance.now() < deadline) {
        const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
        while (sent < due) {
          pending.push(post());
          sent++;
        }
        await sleep(1);
      }
      await Promise.all(pending);
      return sent;
    };
    await paced(Math.round(rate * 2)); // warm-up
    const before = cpuMicros(child.pid);
    const sent = await paced(Math.round(rate * seconds));
    const after = cpuMicros(child.pid);
    agent.destroy();
    return (after.user + after.system - before.user - before.system) / Math.max(1, sent);
  } finally {
    child.kill();
  }
}

if (process.argv[2] === 'echo') {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (data) => socket.write(data));
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
  process.on('disconnect', () => process.exit(0));
}

/**
 * A round trip over loopback TCP between this process and a forked echo process, once per
 * millisecond, while a phase runs: the machine's own wake-up and scheduling tail under the
 * same load, with no gateway in the path. Each delivery crosses 3 to 5 such wake-ups.
 * Returns stop(), which resolves to p50/p99/p99.9/max in ms.
 */
export async function startLoopbackProbe() {
  const child = fork(SELF, ['echo'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', () => reject(new Error('loopback probe echo process exited')));
  });
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const rtts = [];
  socket.on('data', (data) => {
    const now = performance.now();
    for (let i = 0; i + 8 <= data.length; i += 8) rtts.push(now - data.readDoubleLE(i));
  });
  const limit = 600_000; // bounded: ten minutes of samples at most
  const timer = setInterval(() => {
    if (rtts.length >= limit) return;
    const stamp = Buffer.allocUnsafe(8);
    stamp.writeDoubleLE(performance.now());
    socket.write(stamp);
  }, 1);
  return {
    async stop() {
      clearInterval(timer);
      await sleep(50);
      socket.destroy();
      child.kill();
      rtts.sort((a, b) => a - b);
      const at = (p) => rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * p))] ?? NaN;
      return { count: rtts.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: rtts[rtts.length - 1] ?? NaN };
    },
  };
}
