// Builds the console into dist/: index.html, console.js (the page's TypeScript and what it
// imports, @tidings/client and uPlot included, in one minified file) and console.css (ours
// and uPlot's). Nothing is fetched at run time. Prints each file's size, raw and gzipped.
// The gateway's build copies dist/ into its own dist/public/console/.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: { console: join(root, 'src/main.ts') },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  platform: 'browser',
  // @tidings/client's package.json maps `ws` to false for browsers; the page uses its own WebSocket.
  mainFields: ['browser', 'module', 'main'],
  conditions: ['import', 'browser'],
  outdir: dist,
  legalComments: 'none',
  logLevel: 'warning',
});
await build({
  entryPoints: { console: join(root, 'src/console.css') },
  bundle: true,
  minify: true,
  outdir: dist,
  logLevel: 'warning',
});
copyFileSync(join(root, 'src/index.html'), join(dist, 'index.html'));

for (const name of readdirSync(dist).sort()) {
  const bytes = statSync(join(dist, name)).size;
  const gzipped = gzipSync(readFileSync(join(dist, name))).length;
  console.log(`console: dist/${name} ${(bytes / 1024).toFixed(1)} KiB (${(gzipped / 1024).toFixed(1)} KiB gzipped)`);
}
