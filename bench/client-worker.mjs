/**
 * A load-generator process (forked by run.mjs): holds a share of the client sockets, raw
 * Aphlict WebSockets and Socket.IO clients, and records what they receive: latency from
 * the `sentAt` stamp in each message (CLOCK_MONOTONIC microseconds, comparable across
 * processes on one machine), duplicates per socket, and deliveries to sockets that did not
 * subscribe. The parent drives it over IPC: connect, reset, progress, collect, close.
 */
import WebSocket from 'ws';
import { nowMicros, sleep } from './stats.mjs';
import { connectSocketIo } from './sio-client.mjs';

/** @type {Map<number, {spec: object, close: () => void, seen: Set<number>, phids: Set<string>, localGroup: string, remoteGroup: string}>} */
const sockets = new Map();
let stats = freshStats();

function freshStats() {
  return { latencies: {}, perSeq: new Map(), duplicates: 0, misdelivered: 0, received: 0, errors: 0 };
}

function onNotification(entry, msg) {
  const now = nowMicros();
  const seq = msg.seq;
  if (typeof seq !== 'number') return; // not ours
  stats.received++;
  if (entry.seen.has(seq)) {
    stats.duplicates++;
    return;
  }
  entry.seen.add(seq);
  if (!msg.subscribers.some((p) => entry.phids.has(p))) stats.misdelivered++;
  stats.perSeq.set(seq, (stats.perSeq.get(seq) ?? 0) + 1);
  const group = msg.via === entry.spec.node ? entry.localGroup : entry.remoteGroup;
  (stats.latencies[group] ??= []).push(now - msg.sentAt);
}

/** Opens a raw socket, subscribes, and resolves once a pong shows the subscribe was read. */
function connectRaw(spec, entry, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(spec.url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('raw socket: no pong within timeout'));
    }, timeoutMs);
    ws.on('open', () => {
      ws.send(JSON.stringify({ command: 'subscribe', data: spec.phids }));
      ws.send(JSON.stringify({ command: 'ping', data: null }));
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'pong') {
        clearTimeout(timer);
        resolve();
        return;
      }
      onNotification(entry, msg);
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      stats.errors++;
      reject(err);
    });
    ws.on('close', () => clearTimeout(timer));
    entry.close = () => ws.terminate();
  });
}

async function connectAll(specs, concurrency, timeoutMs) {
  let next = 0;
  let failed = 0;
  let firstError = null;
  const lane = async () => {
    while (next < specs.length) {
      const spec = specs[next++];
      const entry = {
        spec,
        close: () => {},
        seen: new Set(),
        phids: new Set(spec.phids),
        localGroup: `${spec.transport}/local`,
        remoteGroup: `${spec.transport}/remote`,
      };
      sockets.set(spec.id, entry);
      try {
        if (spec.transport === 'raw') await connectRaw(spec, entry, timeoutMs);
        else {
          const client = await connectSocketIo(spec, (msg) => onNotification(entry, msg), timeoutMs);
          entry.close = client.close;
        }
      } catch (err) {
        failed++;
        firstError ??= err.message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  return { failed, firstError };
}

process.on('message', async (cmd) => {
  switch (cmd.type) {
    case 'connect': {
      const started = Date.now();
      const { failed, firstError } = await connectAll(cmd.sockets, cmd.concurrency ?? 100, cmd.timeoutMs ?? 20_000);
      process.send({ type: 'connected', ok: cmd.sockets.length - failed, failed, firstError, ms: Date.now() - started });
      return;
    }
    case 'reset':
      stats = freshStats();
      for (const entry of sockets.values()) entry.seen.clear();
      process.send({ type: 'reset' });
      return;
    case 'progress':
      process.send({ type: 'progress', received: stats.received });
      return;
    case 'collect':
      process.send({
        type: 'results',
        latencies: stats.latencies,
        perSeq: [...stats.perSeq],
        duplicates: stats.duplicates,
        misdelivered: stats.misdelivered,
        received: stats.received,
        errors: stats.errors,
      });
      return;
    case 'close':
      for (const entry of sockets.values()) entry.close();
      sockets.clear();
      await sleep(100);
      process.send({ type: 'closed' });
      process.exit(0);
  }
});

process.on('disconnect', () => process.exit(0));
