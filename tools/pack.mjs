#!/usr/bin/env node
// `npm run pack`: the tarballs a user installs, from a built workspace (`npm run build`).
//
// - tidings-client-VERSION.tgz: `npm pack` of libs/client as it is (its declarations are
//   self-contained and it needs nothing from the workspace at run time).
// - tidings-VERSION.tgz, the `tidings` command: the built gateway and the workspace libs it
//   uses (@tidings/protocol, hub, history, bus, relay, auth: private, never published)
//   bundled by esbuild into one CommonJS file, with every npm package left out of the bundle
//   and declared as a real dependency instead, at the range the workspace declares (the
//   gateway's exact pins of ws, engine.io and socket.io included). Which packages those are
//   is read from the bundle itself (esbuild's metafile), so a new import cannot be forgotten.
//
//   node tools/pack.mjs [--out DIR]     (default dist/packages)
//
// Prints one JSON line per tarball: {name, version, file, size, unpackedSize, dependencies}.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = resolve(outIndex >= 0 ? args[outIndex + 1] : join(root, 'dist/packages'));
mkdirSync(out, { recursive: true });

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const gatewayDir = join(root, 'services/gateway');
const gatewayMain = join(gatewayDir, 'dist/main.js');
for (const built of [gatewayMain, join(root, 'libs/client/dist/esm/index.js')]) {
  if (!existsSync(built)) throw new Error(`${built.slice(root.length + 1)} is missing: run npm run build first`);
}

/** `npm pack` of a directory into `out`; npm's own report of the tarball. */
function npmPack(dir) {
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [report] = JSON.parse(json);
  return { name: report.name, version: report.version, file: join(out, report.filename), size: report.size, unpackedSize: report.unpackedSize };
}

/** The package name of a bare import (`pino/file` -> `pino`, `@scope/x/y` -> `@scope/x`). */
const packageOf = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

/** Bundles the gateway; returns the external packages each bundled workspace file imports. */
async function bundleGateway(stage) {
  const external = {
    name: 'npm-packages-stay-external',
    setup(b) {
      // Every bare import but the workspace's own @tidings/* stays a require() of a dependency.
      b.onResolve({ filter: /^[^./]/ }, (a) => (a.path.startsWith('@tidings/') || a.path.startsWith('node:') ? undefined : { path: a.path, external: true }));
    },
  };
  const result = await build({
    entryPoints: [gatewayMain],
    // Named as if at the workspace root, so the source map names sources by their workspace
    // path (libs/bus/src/redis-bus.ts), not by where the staging folder is; written below.
    outfile: join(root, 'tidings.js'),
    write: false,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: true,
    metafile: true,
    absWorkingDir: root,
    // The workspace's paths point @tidings/* at sources; bundle the built libs, as tested.
    tsconfigRaw: {},
    plugins: [external],
    logLevel: 'warning',
  });
  mkdirSync(join(stage, 'dist'));
  for (const file of result.outputFiles) writeFileSync(join(stage, 'dist', file.path.slice(root.length + 1)), file.contents);
  const importers = new Map(); // package -> workspace directories that import it
  for (const [file, input] of Object.entries(result.metafile.inputs)) {
    for (const imp of input.imports) {
      if (!imp.external || imp.path.startsWith('node:')) continue;
      const name = packageOf(imp.path);
      const owner = /^(libs\/[^/]+|services\/[^/]+)\//.exec(file)?.[1];
      if (!owner) throw new Error(`${file} imports ${imp.path} but is not part of a workspace project`);
      if (!importers.has(name)) importers.set(name, new Set());
      importers.get(name).add(owner);
    }
  }
  return importers;
}

/**
 * The range to declare for `name`: the gateway's own declaration wins (its exact pins);
 * else the one the importing libs declare (they must agree); `*` becomes `^installed`.
 */
function rangeOf(name, owners) {
  const declared = (dir) => readJson(join(root, dir, 'package.json')).dependencies?.[name];
  const fromGateway = declared('services/gateway');
  if (fromGateway) return fromGateway;
  const ranges = new Set([...owners].map((dir) => declared(dir)));
  if (ranges.has(undefined)) throw new Error(`${[...owners].join(', ')} import ${name} without declaring it in package.json`);
  if (ranges.size > 1) throw new Error(`${[...owners].join(', ')} declare different ranges for ${name}: ${[...ranges].join(', ')}`);
  const [range] = ranges;
  if (range !== '*') return range;
  const require = createRequire(join(root, [...owners][0], 'package.json'));
  let dir = dirname(require.resolve(name));
  while (!existsSync(join(dir, 'package.json')) || readJson(join(dir, 'package.json')).name !== name) dir = dirname(dir);
  return `^${readJson(join(dir, 'package.json')).version}`;
}

async function packGateway() {
  const gateway = readJson(join(gatewayDir, 'package.json'));
  const workspace = readJson(join(root, 'package.json'));
  const stage = mkdtempSync(join(tmpdir(), 'tidings-pack-'));
  try {
    const importers = await bundleGateway(stage);
    // The gateway's own dependencies, all of them: engine.io is not imported but pinned, so
    // that socket.io loads the version whose internals the gateway reaches into.
    for (const name of Object.keys(gateway.dependencies)) {
      if (!name.startsWith('@tidings/') && !importers.has(name)) importers.set(name, new Set(['services/gateway']));
    }
    const dependencies = Object.fromEntries([...importers].sort(([a], [b]) => a.localeCompare(b)).map(([name, owners]) => [name, rangeOf(name, owners)]));
    const manifest = {
      name: 'tidings',
      version: gateway.version,
      description: workspace.description,
      license: workspace.license,
      keywords: ['aphlict', 'phorge', 'phabricator', 'notifications', 'websocket', 'socket.io', 'redis'],
      engines: workspace.engines,
      // main.ts starts with `#!/usr/bin/env node`, which esbuild keeps at the top of the bundle.
      bin: { tidings: 'dist/tidings.js' },
      files: ['dist/'],
      dependencies,
    };
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    cpSync(join(root, 'README.md'), join(stage, 'README.md'));
    return { ...npmPack(stage), dependencies };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

const client = npmPack(join(root, 'libs/client'));
console.log(JSON.stringify({ ...client, dependencies: readJson(join(root, 'libs/client/package.json')).dependencies }));
console.log(JSON.stringify(await packGateway()));
