/**
 * `npm run cluster` (tools/local-cluster.mjs) as a process: it starts Redis, three gateways
 * and HAProxy on 127.0.0.1, the cluster delivers through HAProxy, and SIGINT (Ctrl-C) stops
 * every process it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { connectSocket, messagesOf, notification, post, sleep } from '@tidings/testing';

const SCRIPT = resolve(__dirname, '../../tools/local-cluster.mjs');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run cluster', () => {
  let child: ChildProcess | undefined;
  let pids: Record<string, number> = {};

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGINT');
    await sleep(500);
    // Anything the script failed to stop is ours to stop, by PID.
    for (const pid of Object.values(pids)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });

  it('cluster - starts redis, three gateways and HAProxy, delivers through HAProxy, and Ctrl-C stops them all', async () => {
    let out = '';
    let base = 0;
    // Ports base..base+16 must be free; the script refuses (exit 2) otherwise, so try a few bases.
    for (let attempt = 0; attempt < 5 && !out.includes('Ctrl-C stops everything.'); attempt++) {
      base = 30_000 + Math.floor(Math.random() * 300) * 20;
      out = '';
      const c = spawn(process.execPath, [SCRIPT, '--base-port', String(base), '--drain-ms', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout!.on('data', (d) => (out += d.toString()));
      c.stderr!.on('data', (d) => (out += d.toString()));
      const deadline = Date.now() + 30_000;
      while (!out.includes('Ctrl-C stops everything.') && c.exitCode === null && Date.now() < deadline) await sleep(50);
      if (c.exitCode === null && !out.includes('Ctrl-C stops everything.')) throw new Error(`local-cluster did not come up: ${out}`);
    }
    expect(out).toContain('Ctrl-C stops everything.');
    pids = Object.fromEntries(
      /^pids: (.*)$/m
        .exec(out)![1]
        .split(' ')
        .map((kv) => kv.split('='))
        .map(([k, v]) => [k, Number(v)]),
    );
    expect(Object.keys(pids).sort()).toEqual(['gw1', 'gw2', 'gw3', 'haproxy', 'redis']);
    expect(out).toContain(`ws://127.0.0.1:${base}/`);
    expect(out).toContain(`http://127.0.0.1:${base + 1}/`);

    // A socket on gw1 directly, a publish through HAProxy's admin port: the Redis bus carries it.
    const gw1Client = Number(/gw1 client\/admin\s+(\d+) /.exec(out)![1]);
    const direct = await connectSocket(`ws://127.0.0.1:${gw1Client}/`);
    const viaLb = await connectSocket(`ws://127.0.0.1:${base}/`);
    for (const s of [direct, viaLb]) {
      s.send('subscribe', ['PHID-USER-cluster']);
      await s.roundTrip();
    }
    for (let i = 0; i < 3; i++) expect((await post(`http://127.0.0.1:${base + 1}`, notification(['PHID-USER-cluster']))).status).toBe(200);
    for (const s of [direct, viaLb]) await s.waitFor((r) => messagesOf(r).length === 3, 5_000, 'three messages');
    await Promise.all([direct.close(), viaLb.close()]);

    // Each gateway believes X-Forwarded-For from HAProxy (which connects from 127.0.0.1), and only from it.
    for (const name of ['gw1', 'gw2', 'gw3']) {
      const env = readFileSync(`/proc/${pids[name]}/environ`, 'utf8').split('\0');
      expect({ name, trust: env.filter((e) => e.startsWith('TIDINGS_LIMITS_TRUST_PROXY=')) }).toEqual({ name, trust: ['TIDINGS_LIMITS_TRUST_PROXY=127.0.0.1'] });
    }

    const exited = new Promise<number | null>((res) => child!.once('exit', (code) => res(code)));
    child!.kill('SIGINT');
    expect(await exited).toBe(0);
    for (const [name, pid] of Object.entries(pids)) expect({ name, alive: alive(pid) }).toEqual({ name, alive: false });
  });
});
