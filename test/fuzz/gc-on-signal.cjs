'use strict';
/**
 * Preload for the fuzz specs' gateways (`--expose-gc --require test/fuzz/gc-on-signal.cjs`,
 * through NODE_OPTIONS): SIGUSR2 runs two full garbage collections, so a report's heap figure
 * is what a run left alive, not garbage that happens to be uncollected (as bench/ does).
 */
process.on('SIGUSR2', () => {
  global.gc();
  global.gc();
});
