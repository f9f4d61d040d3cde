/**
 * One `cluster` entry: a bounded queue of messages for that peer, a few requests in flight
 * over a pooled keep-alive agent, the peer's learned fingerprint, and backoff while it is
 * down. Nothing here throws to the caller or makes it wait: enqueue() only queues.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { MESSAGE_ID_HEADER, type Logger } from '@tidings/protocol';
import type { PeerState, PeerStatus } from './relay';

/** A peer's admin endpoint, as a `cluster` entry gives it. */
export interface PeerAddress {
  host: string;
  port: number;
  /** Default `http`. */
  protocol?: 'http' | 'https';
  /**
   * Path prefix of the peer's admin URL, used as Phorge uses the `path` of a
   * `notification.servers` entry: requests go to `<path without trailing />/?instance=X`,
   * so `/TOKEN` gives `POST /TOKEN/?instance=X` (a Tidings peer with `auth.adminTokens` reads
   * a token there). It may hold a secret: it is never logged or shown (see peerName).
   * Default none: `POST /?instance=X`, as Aphlict.
   */
  path?: string;
}

/** What a path prefix shows in logs, status and metrics: it may hold a token. */
export const REDACTED_PATH = '/REDACTED';

/**
 * How a peer is named in status, metrics and logs: `host:port`, plus `/REDACTED` when its
 * address has a path prefix (which may be a token), so two entries for one host stay apart.
 */
export function peerName(address: PeerAddress): string {
  const base = `${address.host}:${address.port}`;
  return pathPrefix(address.path) === '' ? base : `${base}${REDACTED_PATH}`;
}

/** Phorge's rule (PhabricatorNotificationServerRef::getURI): rtrim(path, '/') . '/' . ltrim(to, '/'). */
export function pathPrefix(path: string | undefined): string {
  return (path ?? '').replace(/\/+$/, '');
}

/** The request target of a relay: the prefix, then Aphlict's `/?instance=`. */
export function relayTarget(address: PeerAddress, instance: string): string {
  return `${pathPrefix(address.path)}/?instance=${encodeURIComponent(instance)}`;
}

/** A message ready to go to peers: serialised once, shared by every peer's queue. */
export interface RelayItem {
  id: string;
  instance: string;
  /** UTF-8 bytes of the frame; Content-Length is their count (Aphlict sends the character count). */
  body: Buffer;
  /** Fingerprints of the nodes that handled the message, the sending node's included. */
  touched: readonly string[];
}

export interface PeerOptions {
  address: PeerAddress;
  /** This node's fingerprint: a peer answering with it is this node itself. */
  ownFingerprint: string;
  queueSize: number;
  timeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  maxInFlight: number;
  /** Extra CA certificates (PEM) trusted for https peers, beside Node's bundled ones. */
  ca?: string | Buffer;
  /** Sent as `Authorization: Bearer TOKEN` with every request; none: no Authorization header. */
  bearerToken?: string;
  logger: Logger;
  now: () => number;
}

/** Receipts are `{"fingerprint":"..."}`; anything longer is not read further. */
const MAX_RECEIPT_BYTES = 16 * 1024;

/** A relay request that got no complete answer within `timeoutMs`. */
export class RelayTimeoutError extends Error {
  override name = 'RelayTimeoutError';
  readonly code = 'RELAY_TIMEOUT';
}

/** Errors of a kept-alive socket the peer had closed: worth one retry on a fresh socket. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE']);

/** Ids sent in MESSAGE_ID_HEADER: visible ASCII, as long as the admin port accepts. */
const HEADER_SAFE_ID = /^[\x21-\x7e]{1,128}$/;

type Outcome =
  | { kind: 'answered'; status: number; body: string }
  | { kind: 'unsendable'; error: Error }
  | { kind: 'failed'; error: Error; reusedSocket: boolean };

export class Peer {
  readonly name: string;
  readonly protocol: 'http' | 'https';
  private state: PeerState = 'unknown';
  private fingerprint: string | null = null;
  private readonly queue: RelayItem[] = [];
  /** Senders waiting for a queued message's request to be written (see enqueue). */
  private readonly handoffs = new Map<RelayItem, () => void>();
  private inFlight = 0;
  private sent = 0;
  private failed = 0;
  private dropped = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  /** Delay before the next probe of a down peer; doubles on each failed probe. */
  private retryDelay: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private pumpScheduled: NodeJS.Immediate | undefined;
  private closing = false;
  private readonly agent: http.Agent;
  private readonly idle = new Set<() => void>();
  private readonly logger: Logger;

  constructor(private readonly options: PeerOptions) {
    const { address } = options;
    this.protocol = address.protocol ?? 'http';
    this.name = peerName(address);
    this.retryDelay = options.retryMinMs;
    this.logger = options.logger.child({ peer: this.name });
    const agentOptions: http.AgentOptions = { keepAlive: true, maxSockets: options.maxInFlight, maxFreeSockets: options.maxInFlight };
    this.agent =
      this.protocol === 'https'
        ? new https.Agent({ ...agentOptions, ...(options.ca ? { ca: [...tls.rootCertificates, options.ca.toString()] } : {}) })
        : new http.Agent(agentOptions);
  }

  get isSelf(): boolean {
    return this.state === 'self';
  }

  /**
   * Queues a message unless the peer is this node or already touched it. Returns a promise
   * that settles once its request has been written to the socket (handed to the kernel, so
   * it leaves even if this process dies next), or once the message will not go out now
   * (the peer went down, it was dropped); undefined when there is nothing to wait for.
   */
  enqueue(item: RelayItem): Promise<void> | undefined {
    if (this.state === 'self') return undefined;
    if (this.closing) {
      this.dropped++;
      return undefined;
    }
    if (this.hasTouched(item)) return undefined;
    if (this.queue.length >= this.options.queueSize) {
      // The oldest message is the least useful one: its readers may have reloaded by now.
      this.release(this.queue.shift()!);
      this.dropped++;
    }
    this.queue.push(item);
    this.schedulePump();
    // A peer that is down holds no one up: its queue waits for the retry.
    if (this.state === 'down') return undefined;
    return new Promise<void>((resolve) => this.handoffs.set(item, resolve));
  }

  /** Settles the hand-off of a message (written, dropped, or not going out now). */
  private release(item: RelayItem): void {
    const done = this.handoffs.get(item);
    if (!done) return;
    this.handoffs.delete(item);
    done();
  }

  private releaseAll(): void {
    const pending = [...this.handoffs.values()];
    this.handoffs.clear();
    for (const done of pending) done();
  }

  status(): PeerStatus {
    return {
      peer: this.name,
      protocol: this.protocol,
      state: this.state,
      sent: this.sent,
      failed: this.failed,
      dropped: this.dropped,
      queued: this.queue.length,
      inFlight: this.inFlight,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      fingerprint: this.fingerprint,
    };
  }

  /**
   * Stops retrying and sends what is queued if the peer is reachable; resolves when the
   * queue is empty and nothing is in flight, or at `deadline` (epoch ms). A peer that is
   * down gets no further attempt. Then the agent's sockets are destroyed; what is left is
   * counted as dropped.
   */
  async close(deadline: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.state === 'down') this.dropQueue();
    this.pump();
    if (this.queue.length > 0 || this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, deadline - this.options.now()));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.idle.add(() => {
          this.idle.clear();
          done();
        });
      });
    }
    if (this.pumpScheduled) clearImmediate(this.pumpScheduled);
    this.pumpScheduled = undefined;
    this.dropQueue();
    this.releaseAll();
    this.agent.destroy();
  }

  private hasTouched(item: RelayItem): boolean {
    return this.fingerprint !== null && item.touched.includes(this.fingerprint);
  }

  private dropQueue(): void {
    this.dropped += this.queue.length;
    for (const item of this.queue) this.release(item);
    this.queue.length = 0;
  }

  /** Coalesces the pumps of one tick, so a publisher's call returns before any request is built. */
  private schedulePump(): void {
    if (this.pumpScheduled || this.closing) return;
    this.pumpScheduled = setImmediate(() => {
      this.pumpScheduled = undefined;
      this.pump();
    });
  }

  /** Requests allowed at once: none while waiting to retry, one probe while down. */
  private capacity(): number {
    if (this.state === 'self') return 0;
    if (this.state === 'down') return this.retryTimer || this.closing ? 0 : 1;
    return this.options.maxInFlight;
  }

  private pump(): void {
    while (this.inFlight < this.capacity() && this.queue.length > 0) {
      const item = this.queue.shift()!;
      if (this.hasTouched(item)) {
        this.release(item);
        continue;
      }
      this.inFlight++;
      this.deliver(item).catch((err: Error) => this.logger.error({ err: err.message, stack: err.stack }, 'relay: delivery bookkeeping failed'));
    }
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.closing && this.inFlight === 0 && (this.queue.length === 0 || this.capacity() === 0)) {
      for (const notify of [...this.idle]) notify();
    }
  }

  private async deliver(item: RelayItem): Promise<void> {
    let outcome = await this.request(item);
    // A keep-alive socket the peer closed while idle fails on reuse; that says nothing about
    // the peer, so try once more on a fresh socket (as Node's http docs advise).
    if (outcome.kind === 'failed' && outcome.reusedSocket && !this.closing) outcome = await this.request(item);
    this.inFlight--;
    this.release(item);
    if (outcome.kind === 'answered') this.onAnswer(item, outcome.status, outcome.body);
    else if (outcome.kind === 'unsendable') this.onUnsendable(item, outcome.error);
    else this.onFailure(item, outcome.error);
    this.pump();
  }

  private request(item: RelayItem): Promise<Outcome> {
    const { address, timeoutMs } = this.options;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const transport = this.protocol === 'https' ? https : http;
      const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json', 'Content-Length': item.body.length };
      // A uniqueID is the publisher's text: sent as a header only when it is a plain token
      // (a peer falls back to the body's uniqueID, which is the same id then).
      if (HEADER_SAFE_ID.test(item.id)) headers[MESSAGE_ID_HEADER] = item.id;
      if (this.options.bearerToken !== undefined) headers.Authorization = `Bearer ${this.options.bearerToken}`;
      let req: http.ClientRequest;
      try {
        req = transport.request({
          host: address.host,
          port: address.port,
          method: 'POST',
          path: relayTarget(address, item.instance),
          agent: this.agent,
          headers,
        });
      } catch (error) {
        // Bad options are this node's problem, not the peer's: refuse the message, not the peer.
        resolve({ kind: 'unsendable', error: error as Error });
        return;
      }
      // One deadline for the whole exchange, not an idle timeout: a peer trickling bytes is slow too.
      const timer = setTimeout(() => req.destroy(new RelayTimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (error: NodeJS.ErrnoException) =>
        settle({ kind: 'failed', error, reusedSocket: req.reusedSocket && STALE_SOCKET_CODES.has(error.code ?? '') }),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size >= MAX_RECEIPT_BYTES) return;
          chunks.push(chunk);
          size += chunk.length;
        });
        res.on('error', (error) => settle({ kind: 'failed', error, reusedSocket: false }));
        res.on('end', () =>
          settle({ kind: 'answered', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8', 0, MAX_RECEIPT_BYTES) }),
        );
      });
      // 'finish': the whole request is written to the socket, i.e. handed to the kernel.
      req.once('finish', () => this.release(item));
      req.end(item.body);
    });
  }

  private onAnswer(item: RelayItem, status: number, body: string): void {
    const before = this.state;
    this.retryDelay = this.options.retryMinMs;
    if (status >= 200 && status < 300) {
      this.sent++;
      this.learn(body);
    } else {
      // The peer is up and refused this message; sending it again would be refused again.
      this.failed++;
      this.dropped++;
      this.noteError(`HTTP ${status}`);
      this.logger.warn(
        { status, id: item.id, instance: item.instance, body: body.slice(0, 200) },
        status === 401
          ? "relay peer refused this node's credentials (HTTP 401): add this node's first auth.adminTokens entry to the peer's auth.adminTokens, or put a token of the peer in this cluster entry's path"
          : 'relay peer refused a message',
      );
    }
    if (this.state === 'self') return;
    this.state = 'up';
    if (before !== 'up') this.logger.info({ after: before, fingerprint: this.fingerprint }, 'relay peer is up');
  }

  private onUnsendable(item: RelayItem, error: Error): void {
    this.failed++;
    this.dropped++;
    this.noteError(error.message);
    this.logger.warn({ err: error.message, id: item.id, instance: item.instance }, 'relay: message cannot be sent');
  }

  private learn(body: string): void {
    let fingerprint: unknown;
    try {
      fingerprint = (JSON.parse(body) as { fingerprint?: unknown })?.fingerprint;
    } catch {
      return;
    }
    if (typeof fingerprint !== 'string' || fingerprint === '' || fingerprint === this.fingerprint) return;
    this.fingerprint = fingerprint;
    if (fingerprint === this.options.ownFingerprint) {
      this.state = 'self';
      this.queue.length = 0;
      this.releaseAll();
      this.logger.info({ fingerprint }, 'relay peer is this node; not sending to it again');
      return;
    }
    this.logger.info({ fingerprint }, 'relay peer fingerprint learned');
    // Messages queued before we knew it may already have passed through it.
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].touched.includes(fingerprint)) this.release(this.queue.splice(i, 1)[0]);
    }
  }

  private onFailure(item: RelayItem, error: Error): void {
    this.failed++;
    this.noteError(error.message || (error as NodeJS.ErrnoException).code || String(error));
    if (this.state === 'self') return;
    if (this.state !== 'down') {
      this.logger.warn({ err: this.lastError, retryInMs: this.retryDelay }, 'relay peer is down; retrying with backoff');
    }
    this.state = 'down';
    // Nobody waits on a peer that is down.
    this.releaseAll();
    if (this.closing) {
      this.dropped++;
      this.dropQueue();
      return;
    }
    // Back to the front: it is the oldest, and goes first when the peer answers again.
    if (this.queue.length >= this.options.queueSize) this.dropped++;
    else this.queue.unshift(item);
    if (!this.retryTimer) {
      const delay = this.retryDelay;
      this.retryDelay = Math.min(this.retryDelay * 2, this.options.retryMaxMs);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, delay);
      this.retryTimer.unref();
    }
  }

  private noteError(message: string): void {
    this.lastError = message;
    this.lastErrorAt = this.options.now();
  }
}
