/** Connection events a storm worker records per client (bench/storm-worker.mjs), by number. */
export const EVENT = { attempt: 0, open: 1, ready: 2, close: 3, replayAsked: 4, replayed: 5 };
