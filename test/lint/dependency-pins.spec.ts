/**
 * The gateway's fast paths reach into private internals: ws's (`_sender`, `_state`,
 * `sendFrame`, `Sender.frame`, `_socket`, in client/raw-socket.ts) and engine.io's
 * (`conn.transport.socket`, in client/socketio-connection.ts). A minor release may move
 * them, so the gateway pins these packages to exact versions (and socket.io, whose range
 * decides which engine.io it loads), and what is installed and locked is what is pinned.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(__dirname, '../..');
const gatewayDir = join(root, 'services/gateway');
const PINNED = ['ws', 'engine.io', 'socket.io'];

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/** The directory of the copy of `name` that code in `fromDir` loads. */
function packageDirOf(name: string, fromDir: string): string {
  let dir = dirname(require.resolve(name, { paths: [fromDir] }));
  while (!dir.endsWith(join('node_modules', name))) {
    if (dirname(dir) === dir) throw new Error(`${name} resolved outside a node_modules/${name} directory`);
    dir = dirname(dir);
  }
  return dir;
}

const versionAt = (dir: string) => readJson(join(dir, 'package.json')).version as string;

/** What is wrong with one pin: not an exact version, or not the version installed for the gateway. */
function pinProblems(dependencies: Record<string, string>, name: string, installed: string): string[] {
  const range = dependencies[name];
  if (range === undefined) return [`${name} is not a dependency of the gateway`];
  if (!/^\d+\.\d+\.\d+$/.test(range)) return [`${name} is "${range}", not an exact version`];
  if (range !== installed) return [`${name} is pinned to ${range} but ${installed} is installed`];
  return [];
}

describe('dependencies whose internals the gateway uses', () => {
  const dependencies = readJson(join(gatewayDir, 'package.json')).dependencies as Record<string, string>;
  const lock = readJson(join(root, 'package-lock.json')) as { packages: Record<string, { version?: string }> };

  it.each(PINNED)('%s is pinned to the exact version installed for the gateway and recorded in the lock file', (name) => {
    const installedDir = packageDirOf(name, gatewayDir);
    expect(pinProblems(dependencies, name, versionAt(installedDir))).toEqual([]);
    const lockKey = installedDir.slice(root.length + 1).split('\\').join('/');
    expect(lock.packages[lockKey]?.version).toBe(dependencies[name]);
  });

  it('socket.io loads the same engine.io copy as the gateway pins (not a nested one)', () => {
    expect(packageDirOf('engine.io', packageDirOf('socket.io', gatewayDir))).toBe(packageDirOf('engine.io', gatewayDir));
  });

  it('positive controls: a range, a missing pin and a stale pin are caught', () => {
    expect(pinProblems({ ws: '^8.23.0' }, 'ws', '8.23.0')).toEqual(['ws is "^8.23.0", not an exact version']);
    expect(pinProblems({ ws: '~8.23.0' }, 'ws', '8.23.0')).toEqual(['ws is "~8.23.0", not an exact version']);
    expect(pinProblems({}, 'engine.io', '6.6.12')).toEqual(['engine.io is not a dependency of the gateway']);
    expect(pinProblems({ ws: '8.23.0' }, 'ws', '8.24.0')).toEqual(['ws is pinned to 8.23.0 but 8.24.0 is installed']);
  });
});
