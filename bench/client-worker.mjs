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

/** @type {Map<number, {spec: object, index: number, close: () => void, phids: Set<string>, localGroup: string, remoteGroup: string}>} */
const sockets = new Map();

/** Latency samples in a growing Float64Array: off the JS heap, so a scavenge never copies them. */
class Samples {
  values = new Float64Array(4096);
  length = 0;
  push(v) {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = v;
  }
  toArray() {
    return Array.from(this.values.subarray(0, this.length));
  }
}

/**
 * What one phase received, sized up front from its seq range: counts per seq and a bit per
 * (seq, socket) for duplicates live in typed arrays, so recording a delivery allocates
 * nothing that outlives it. A worker takes ~7,500 deliveries/s at 1,000 publishes/s; with
 * per-socket Sets and growing arrays, its scavenges took up to 27 ms, and every delivery
 * arriving meanwhile was timed late. Seqs outside the range (a straggler from the previous
 * phase) fall back to a Map and a Set.
 */
class Phase {
  constructor(seq0 = 0, count = 0) {
    this.seq0 = seq0;
    this.count = count;
    this.perSeq = new Uint32Array(count);
    this.seen = new Uint8Array(Math.ceil((count * Math.max(1, sockets.size)) / 8));
    this.stride = Math.max(1, sockets.size);
    this.otherPerSeq = new Map();
    this.otherSeen = new Set();
    this.latencies = {};
    this.duplicates = 0;
    this.misdelivered = 0;
    this.received = 0;
    this.errors = 0;
  }

  /** Records a delivery; false if this socket had it already. */
  record(entry, seq) {
    const k = seq - this.seq0;
    if (k >= 0 && k < this.count && entry.index < this.stride) {
      const bit = k * this.stride + entry.index;
      const mask = 1 << (bit & 7);
      if (this.seen[bit >> 3] & mask) return false;
      this.seen[bit >> 3] |= mask;
      this.perSeq[k]++;
      return true;
    }
    const key = `${seq}/${entry.index}`;
    if (this.otherSeen.has(key)) return false;
    this.otherSeen.add(key);
    this.otherPerSeq.set(seq, (this.otherPerSeq.get(seq) ?? 0) + 1);
    return true;
  }

  perSeqEntries() {
    const out = [...this.otherPerSeq];
    for (let k = 0; k < this.count; k++) if (this.perSeq[k]) out.push([this.seq0 + k, this.perSeq[k]]);
    return out;
  }
}

let stats = new Phase();

function onNotification(entry, msg) {
  const now = nowMicros();
  const seq = msg.seq;
  if (typeof seq !== 'number') return; // not ours
  stats.received++;
  if (!stats.record(entry, seq)) {
    stats.duplicates++;
    return;
  }
  if (!msg.subscribers.some((p) => entry.phids.has(p))) stats.misdelivered++;
  const group = msg.via === entry.spec.node ? entry.localGroup : entry.remoteGroup;
  (stats.latencies[group] ??= new Samples()).push(now - msg.sentAt);
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
        // A slow reader (--scenario slow-readers) stops reading once subscribed: the gateway's
        // writes fill the kernel's buffers, then its own, until it cuts the socket off.
        if (spec.pauseAfterReady) ws.pause();
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
        index: sockets.size,
        close: () => {},
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
      stats = new Phase(cmd.seq0, cmd.count);
      process.send({ type: 'reset' });
      return;
    case 'progress':
      process.send({ type: 'progress', received: stats.received });
      return;
    case 'collect':
      process.send({
        type: 'results',
        latencies: Object.fromEntries(Object.entries(stats.latencies).map(([g, samples]) => [g, samples.toArray()])),
        perSeq: stats.perSeqEntries(),
        duplicates: stats.duplicates,
        misdelivered: stats.misdelivered,
        received: stats.received,
        errors: stats.errors,
      });
      return;
    case 'drop':
      // Closes some sockets (the slow readers, after their phase); the others keep their index.
      for (const id of cmd.ids) {
        sockets.get(id)?.close();
        sockets.delete(id);
      }
      process.send({ type: 'dropped' });
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
