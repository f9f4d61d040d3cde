/**
 * A publisher for long runs: POSTs messages at a steady rate over keep-alive HTTP, round
 * robin over admin ports, each addressed to K random PHIDs of a pool of P, and keeps per
 * message (in typed arrays) its PHIDs, when it was first sent and when it was acknowledged,
 * so that who should have received what is decided afterwards from the times a socket was
 * connected. A publish that fails (connection error, 5xx from a dying node or from HAProxy)
 * is sent again with the same body, `uniqueID` included, as Phorge tries its next admin
 * server; the gateways drop the copy they already have, so a retry never delivers twice.
 */
import http from 'node:http';
import { createRandom, nowMicros, pickDistinct, sleep } from './stats.mjs';

export const phidOf = (k) => `PHID-USER-${String(k).padStart(20, '0')}`;

export class PacedPublisher {
  /**
   * @param {object} o
   * @param {{port: number, via: number}[]} o.targets admin ports (a gateway's, or HAProxy's), and the `via` each body names
   * @param {number} o.rate messages per second
   * @param {number} o.maxMessages bound on the count (sizes the records)
   * @param {number} o.phidCount P: PHIDs are phidOf(0..P-1)
   * @param {number} [o.phidsPerMessage] K (5)
   * @param {number} [o.seed] PRNG seed of the addressees
   * @param {number} [o.maxSockets] keep-alive sockets per target (64)
   * @param {number} [o.retryLimit] sends of one message before it counts as failed (20)
   * @param {number} [o.retryDelayMs] wait before sending a failed message again (100)
   * @param {number} [o.padBytes] extra bytes of padding in each body (0)
   */
  constructor(o) {
    this.targets = o.targets;
    this.rate = o.rate;
    this.max = o.maxMessages;
    this.phidCount = o.phidCount;
    this.k = o.phidsPerMessage ?? 5;
    this.random = createRandom(o.seed ?? 7);
    this.retryLimit = o.retryLimit ?? 20;
    this.retryDelayMs = o.retryDelayMs ?? 100;
    this.pad = o.padBytes ? 'x'.repeat(o.padBytes) : undefined;
    this.agents = this.targets.map(() => new http.Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 64 }));
    this.sentAt = new Float64Array(this.max + 1);
    this.answeredAt = new Float64Array(this.max + 1);
    /** 200 once acknowledged; the last failure's HTTP status (or -1 for a connection error) while not. */
    this.status = new Int16Array(this.max + 1);
    this.attempts = new Uint8Array(this.max + 1);
    this.phids = new Int32Array((this.max + 1) * this.k);
    this.sent = 0;
    this.inflight = 0;
    this.retries = 0;
    this.failuresByStatus = new Map();
    this.lagged = 0;
    this.stopping = false;
  }

  /** The PHID indexes message `seq` (1-based) was addressed to. */
  phidsOf(seq) {
    return this.phids.subarray(seq * this.k, seq * this.k + this.k);
  }

  /** Starts publishing; `seconds` bounds it (as does maxMessages). Resolves when publishing ends and every answer is in. */
  run(seconds) {
    const total = Math.min(this.max, Math.round(this.rate * seconds));
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000 + 1_000;
    this.done = new Promise((resolve) => {
      const tick = () => {
        const now = performance.now();
        const due = Math.min(total, Math.floor(((now - t0) / 1000) * this.rate) + 1);
        while (!this.stopping && this.sent < due && this.inflight < 1024) this.publishOne(++this.sent);
        if (!this.stopping && this.sent < due) this.lagged++;
        if (this.stopping || this.sent >= total || now > deadline) return void this.drained().then(resolve);
        setTimeout(tick, 1);
      };
      tick();
    });
    return this.done;
  }

  /** Stops sending new messages; resolves once every message sent is answered (or gave up). */
  stop() {
    this.stopping = true;
    return this.done ?? Promise.resolve();
  }

  async drained() {
    const deadline = Date.now() + (this.retryLimit * this.retryDelayMs + 30_000);
    while (this.inflight > 0 && Date.now() < deadline) await sleep(20);
    for (const a of this.agents) a.destroy();
  }

  publishOne(seq) {
    const picks = pickDistinct(this.random, this.phidCount, this.k);
    this.phids.set(picks, seq * this.k);
    const t = seq % this.targets.length;
    const sentAt = nowMicros();
    this.sentAt[seq] = sentAt;
    const body = JSON.stringify({
      type: 'notification',
      key: String(seq),
      subscribers: picks.map(phidOf),
      uniqueID: `bench${String(seq).padStart(27, '0')}`,
      seq,
      via: this.targets[t].via,
      sentAt,
      ...(this.pad ? { pad: this.pad } : {}),
    });
    this.inflight++;
    this.post(seq, t, body);
  }

  post(seq, t, body) {
    this.attempts[seq]++;
    const failed = (code) => {
      this.status[seq] = code;
      this.failuresByStatus.set(code, (this.failuresByStatus.get(code) ?? 0) + 1);
      if (this.attempts[seq] >= this.retryLimit) {
        this.inflight--;
        return;
      }
      this.retries++;
      // The next target, as Phorge tries its next admin server (HAProxy: the same address).
      setTimeout(() => this.post(seq, (t + 1) % this.targets.length, body), this.retryDelayMs);
    };
    const req = http.request(
      {
        agent: this.agents[t],
        host: '127.0.0.1',
        port: this.targets[t].port,
        method: 'POST',
        path: '/?instance=default',
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            this.status[seq] = 200;
            this.answeredAt[seq] = nowMicros();
            this.inflight--;
          } else failed(res.statusCode);
        });
        res.on('error', () => failed(-1));
      },
    );
    req.on('error', () => failed(-1));
    req.end(body);
  }

  /** Messages acknowledged, and those that were not after every retry. */
  outcome() {
    let acknowledged = 0;
    let unacknowledged = 0;
    for (let s = 1; s <= this.sent; s++) {
      if (this.status[s] === 200) acknowledged++;
      else unacknowledged++;
    }
    return { sent: this.sent, acknowledged, unacknowledged, retries: this.retries, failuresByStatus: Object.fromEntries(this.failuresByStatus) };
  }
}
