// After tsc: copies the console's built page (services/console/dist, built first by Nx since
// the gateway depends on @tidings/console) into dist/public/console/, where the gateway
// serves it from at /console/ on the admin port. The page travels inside the gateway's
// dist: a production install needs nothing else.
import { cpSync, existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const gateway = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const page = join(dirname(require.resolve('@tidings/console/package.json')), 'dist');
if (!existsSync(join(page, 'index.html'))) {
  console.error(`gateway build: the console is not built (${page}/index.html is missing); build @tidings/console first`);
  process.exit(1);
}
const target = join(gateway, 'dist', 'public', 'console');
rmSync(target, { recursive: true, force: true });
cpSync(page, target, { recursive: true });
