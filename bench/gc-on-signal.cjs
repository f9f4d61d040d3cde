'use strict';
/**
 * Bench-only preload for a gateway started with `--expose-gc --require bench/gc-on-signal.cjs`
 * (bench/subscriptions.mjs): SIGUSR2 runs two full garbage collections, so the bench can read
 * the live heap (from /metrics) and RSS without the garbage that happens to be uncollected at
 * that moment. The gateway never calls gc() itself; the bench reads its figures before it
 * sends the signal too, and prints both.
 */
process.on('SIGUSR2', () => {
  global.gc();
  global.gc();
});
