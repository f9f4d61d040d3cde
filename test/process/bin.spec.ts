/**
 * `npx tidings` works from the repository root after `npm ci && npm run build`: npm links
 * the gateway's bin, and it runs the gateway in the same process it starts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(__dirname, '../..');
const bin = join(root, 'node_modules/.bin/tidings');

function configFile(content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tidings-bin-')), 'aphlict.json');
  writeFileSync(file, JSON.stringify(content));
  return file;
}

const servers = [
  { type: 'client', port: 0, listen: '127.0.0.1' },
  { type: 'admin', port: 0, listen: '127.0.0.1' },
];

describe('the tidings bin', () => {
  it('checks a config with --test=true: 0 when good, 1 naming the bad key', () => {
    const good = spawnSync(bin, [`--config=${configFile({ servers })}`, '--test=true'], { encoding: 'utf8' });
    expect(good.status).toBe(0);
    const bad = spawnSync(bin, [`--config=${configFile({ servers, histroy: {} })}`, '--test=true'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('histroy');
  });

  it('is the process that listens, and exits 0 on SIGTERM', async () => {
    const child = spawn(bin, [`--config=${configFile({ servers })}`], {
      env: { ...process.env, TIDINGS_SHUTDOWN_DRAIN_MS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const started = await new Promise<{ pid: number }>((res, rej) => {
      const timer = setTimeout(() => rej(new Error('no "gateway started" line within 15 s')), 15_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          const rec = JSON.parse(line) as { msg?: string; pid?: number };
          if (rec.msg === 'gateway started') {
            clearTimeout(timer);
            res({ pid: rec.pid! });
          }
        } catch {
          // not a log line
        }
      });
    });
    expect(started.pid).toBe(child.pid);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
