// After both tsc builds: one self-contained declaration file for each entry. The client
// imports only types from @tidings/protocol (its JavaScript has no protocol code), so the
// few protocol types it names (Notification, Position, SocketIoAck, ReplayRequest) are
// inlined here and the installed package needs no @tidings/protocol at all.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { generateDtsBundle } = require('dts-bundle-generator');

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [declarations] = generateDtsBundle(
  [
    {
      filePath: join(root, 'src/index.ts'),
      libraries: { inlinedLibraries: ['@tidings/protocol'] },
      // Export what src/index.ts exports, nothing more (protocol's Notification stays internal).
      output: { exportReferencedTypes: false, noBanner: true },
    },
  ],
  { preferredConfigPath: join(root, 'tsconfig.lib.json') },
);
if (/@tidings\//.test(declarations)) throw new Error('bundled declarations still name a @tidings/ package');
// No relative imports inside: the same text serves the CommonJS and the ES module entry.
for (const out of ['dist/index.d.ts', 'dist/esm/index.d.ts']) writeFileSync(join(root, out), declarations);
