/**
 * A reference for the CPU figures: what a bare node:http server (a child process that reads
 * the body and answers 200) costs per request on this machine right now, under the same
 * keep-alive POSTs at the same rate. On this VM that figure drifts by a third over a day
 * (kernel and wake-up costs, not JavaScript), and the gateway's figure drifts with it, so the
 * bench prints both side by side.
 */
import http from 'node:http';
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
  const child = fork(SELF, ['serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
