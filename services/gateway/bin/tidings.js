#!/usr/bin/env node
// The `tidings` command. A committed file, so npm links it at `npm ci` before anything is
// built; it loads the built gateway into this same process (no child process, so signals
// reach the process that listens).
try {
  require.resolve('../dist/main.js');
} catch {
  process.stderr.write('tidings: the gateway is not built yet; run `npm run build` first\n');
  process.exit(1);
}
require('../dist/main.js');
