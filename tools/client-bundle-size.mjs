#!/usr/bin/env node
// What @tidings/client adds to a web page: its ES module build bundled by esbuild for the
// browser, minified, as an application that imports `connect` gets it, in bytes, gzipped
// (zlib's default level, what servers usually send) and with Brotli; and how much of it
// is the client's own code and how much socket.io-client (with engine.io-client).
//
//   node tools/client-bundle-size.mjs           print the figures
//   node tools/client-bundle-size.mjs --write   also put them in libs/client/README.md
//   node tools/client-bundle-size.mjs --check   exit 1 when the README shows other figures
//
// Needs a built client (`npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readmePath = join(root, 'libs/client/README.md');
const BEGIN = '<!-- bundle-size: written by tools/client-bundle-size.mjs --write -->';
const END = '<!-- /bundle-size -->';

/** Bundles `contents` (an entry module) for the browser, minified; returns the text and per-input bytes. */
async function bundle(contents) {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: 'js', sourcefile: 'page.js' },
    absWorkingDir: root,
    bundle: true,
    minify: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    metafile: true,
    // Not the workspace tsconfig.json: its `paths` point @tidings/* at their sources; an
    // application gets the package's build.
    tsconfigRaw: {},
    logLevel: 'silent',
  });
  const text = result.outputFiles[0].text;
  const [output] = Object.values(result.metafile.outputs);
  return { text, inputs: output.inputs };
}

function sizes(text) {
  const bytes = Buffer.from(text);
  return {
    minified: bytes.length,
    gzip: gzipSync(bytes).length,
    brotli: brotliCompressSync(bytes).length,
  };
}

/** Bytes in the output by origin: the client, socket.io-client and what it brings, the rest. */
function breakdown(inputs) {
  const parts = { client: 0, socketio: 0, other: 0 };
  for (const [path, { bytesInOutput }] of Object.entries(inputs)) {
    // The entry itself and the empty module that stands for `ws` are a few bytes of glue.
    if (path === 'page.js' || path.startsWith('(disabled):')) continue;
    if (path.startsWith('libs/client/')) parts.client += bytesInOutput;
    else if (/node_modules\/(socket\.io-client|socket\.io-parser|engine\.io-client|engine\.io-parser|@socket\.io\/component-emitter)\//.test(path)) parts.socketio += bytesInOutput;
    else parts.other += bytesInOutput;
  }
  return parts;
}

const kB = (n) => `${(n / 1000).toFixed(1)} kB`;

const app = await bundle("import { connect } from '@tidings/client';\nglobalThis.connect = connect;\n");
const all = await bundle("export * from '@tidings/client';\n");
const appSizes = sizes(app.text);
const allSizes = sizes(all.text);
const parts = breakdown(app.inputs);
const pkg = JSON.parse(readFileSync(join(root, 'node_modules/esbuild/package.json'), 'utf8'));

const block = [
  BEGIN,
  '| bundle (esbuild, minified, for browsers) | minified | gzip | brotli |',
  '| --- | --- | --- | --- |',
  `| \`import { connect } from '@tidings/client'\` | ${kB(appSizes.minified)} | ${kB(appSizes.gzip)} | ${kB(appSizes.brotli)} |`,
  `| everything the package exports | ${kB(allSizes.minified)} | ${kB(allSizes.gzip)} | ${kB(allSizes.brotli)} |`,
  '',
  `Of the minified \`connect\` bundle, ${kB(parts.client)} is the client's own code and ` +
    `${kB(parts.socketio)} socket.io-client with engine.io-client (bundled even when only the raw ` +
    `transport is used)${parts.other ? `, ${kB(parts.other)} other packages` : ''}. ` +
    `Measured with esbuild ${pkg.version}; gzip at zlib's default level, Brotli at its highest.`,
  END,
].join('\n');

console.log(block.split('\n').slice(1, -1).join('\n'));

const args = new Set(process.argv.slice(2));
if (args.has('--write') || args.has('--check')) {
  const readme = readFileSync(readmePath, 'utf8');
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) {
    console.error(`libs/client/README.md has no ${BEGIN} ... ${END} block`);
    process.exit(1);
  }
  const updated = readme.slice(0, start) + block + readme.slice(end + END.length);
  if (args.has('--check')) {
    if (updated !== readme) {
      console.error('libs/client/README.md shows other bundle sizes: run node tools/client-bundle-size.mjs --write');
      process.exit(1);
    }
    console.log('libs/client/README.md is up to date');
  } else if (updated !== readme) {
    writeFileSync(readmePath, updated);
    console.log('libs/client/README.md updated');
  }
}
