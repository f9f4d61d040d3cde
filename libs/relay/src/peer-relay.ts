/**
 * The Aphlict peer relay over HTTP: one Peer per `cluster` entry, each with its own queue,
 * so a slow or dead peer delays neither the publisher nor the other peers.
 */
import { silentLogger, type Envelope, type Logger } from '@tidings/protocol';
import { Peer, peerName, type PeerAddress } from './peer';
import type { PeerStatus, Relay } from './relay';

export interface PeerRelayOptions {
  /** The `cluster` entries; may include this node itself (recognised by its receipt). */
  peers: readonly PeerAddress[];
  /** This node's fingerprint, the one its admin receipts carry. */
  fingerprint: string;
  /** Messages queued per peer while it is slow or down; the oldest are dropped and counted. Default 1000. */
  queueSize?: number;
  /** Deadline of one relay request, answer included, in ms. Default 2000 (Phorge's own publish timeout). */
  timeoutMs?: number;
  /** First delay before retrying a peer that is down, in ms; doubles per failed probe. Default 250. */
  retryMinMs?: number;
  /** Largest retry delay, in ms. Default 30000. */
  retryMaxMs?: number;
  /** Requests open at once per peer (also its agent's socket pool). Default 4. */
  maxInFlight?: number;
  /** Extra CA certificates (PEM) trusted for https peers, beside Node's bundled ones. Default none. */
  ca?: string | Buffer;
  /**
   * This node's admin token, sent to every peer as `Authorization: Bearer TOKEN` so that
   * Tidings peers with `auth.adminTokens` accept the relay (the gateway passes its first
   * `auth.adminTokens` entry). Aphlict peers ignore the header. Never logged. Default none:
   * no Authorization header, as Aphlict sends.
   */
  bearerToken?: string;
  /** How long close() waits for queued messages to go out, in ms. Default 2000. */
  closeTimeoutMs?: number;
  /**
   * Relay messages that reached this node from another node (their `touched` names one).
   * Default true, as Aphlict does: a partial mesh still carries every message everywhere.
   * In a full mesh, where every node lists every other, false saves one request per peer
   * per hop and spares Aphlict peers the duplicate copies they cannot drop themselves.
   */
  forward?: boolean;
  /**
   * Longest wait of send()'s promise for the message's requests to be written to the
   * reachable peers' sockets, in ms. Default 25: normally they are written within the tick.
   */
  handoffWaitMs?: number;
  /** Default: logs nothing. */
  logger?: Logger;
  /** Clock for status timestamps. Default Date.now. */
  now?: () => number;
}

export const PEER_RELAY_DEFAULTS = {
  queueSize: 1_000,
  timeoutMs: 2_000,
  retryMinMs: 250,
  retryMaxMs: 30_000,
  maxInFlight: 4,
  closeTimeoutMs: 2_000,
  forward: true,
  handoffWaitMs: 25,
} as const;

export class RelayOptionsError extends Error {
  override name = 'RelayOptionsError';
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RelayOptionsError(`relay: ${name} must be a positive number, got ${value}`);
  return value;
}

const RESOLVED: Promise<void> = Promise.resolve();

/** What an Authorization header can carry after `Bearer `. */
const HEADER_TOKEN = /^[\x21-\x7e]+$/;
/** A path prefix Node sends as is: it starts with / and holds no query, fragment, space or non-ASCII. */
const PATH_PREFIX = /^\/[\x21-\x22\x24-\x3e\x40-\x7e]*$/;

export class PeerRelay implements Relay {
  private readonly peers: Peer[];
  private readonly closeTimeoutMs: number;
  private readonly fingerprint: string;
  private readonly forward: boolean;
  private readonly handoffWaitMs: number;
  private readonly now: () => number;
  private closing?: Promise<void>;

  constructor(options: PeerRelayOptions) {
    const o = { ...PEER_RELAY_DEFAULTS, ...stripUndefined(options) };
    for (const key of ['queueSize', 'timeoutMs', 'retryMinMs', 'retryMaxMs', 'maxInFlight', 'closeTimeoutMs', 'handoffWaitMs'] as const) {
      positive(key, o[key]);
    }
    if (!Number.isInteger(o.queueSize) || !Number.isInteger(o.maxInFlight)) {
      throw new RelayOptionsError('relay: queueSize and maxInFlight must be integers');
    }
    if (o.retryMinMs > o.retryMaxMs) {
      throw new RelayOptionsError(`relay: retryMinMs (${o.retryMinMs}) must not exceed retryMaxMs (${o.retryMaxMs})`);
    }
    if (!options.fingerprint) throw new RelayOptionsError('relay: fingerprint is required');
    // The messages name the setting, never its value: both may be secrets.
    if (options.bearerToken !== undefined && !HEADER_TOKEN.test(options.bearerToken)) {
      throw new RelayOptionsError('relay: bearerToken must be one run of visible ASCII characters (no spaces)');
    }
    for (const address of options.peers) {
      if (address.path !== undefined && !PATH_PREFIX.test(address.path)) {
        throw new RelayOptionsError(`relay: the path of peer ${peerName(address)} must start with / and hold only visible ASCII characters, without ? or #`);
      }
    }
    const logger = (options.logger ?? silentLogger).child({ component: 'relay' });
    this.now = options.now ?? Date.now;
    this.closeTimeoutMs = o.closeTimeoutMs;
    this.fingerprint = options.fingerprint;
    this.forward = o.forward;
    this.handoffWaitMs = o.handoffWaitMs;
    this.peers = options.peers.map(
      (address) =>
        new Peer({
          address,
          ownFingerprint: options.fingerprint,
          queueSize: o.queueSize,
          timeoutMs: o.timeoutMs,
          retryMinMs: o.retryMinMs,
          retryMaxMs: o.retryMaxMs,
          maxInFlight: o.maxInFlight,
          ca: options.ca,
          bearerToken: options.bearerToken,
          logger,
          now: this.now,
        }),
    );
  }

  send(message: Envelope, touched: readonly string[]): Promise<void> {
    if (this.closing) return RESOLVED;
    if (!this.forward && touched.some((f) => f !== this.fingerprint)) return RESOLVED;
    // Serialised once for every peer; Content-Length counts these bytes.
    const item = { id: message.id, instance: message.instance, body: Buffer.from(message.frame, 'utf8'), touched };
    const handoffs: Promise<void>[] = [];
    for (const peer of this.peers) {
      const handoff = peer.enqueue(item);
      if (handoff) handoffs.push(handoff);
    }
    if (handoffs.length === 0) return RESOLVED;
    // Bounded: a peer whose requests are all in flight (slow) delays the answer by this at most.
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.handoffWaitMs);
      void Promise.all(handoffs).then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  status(): PeerStatus[] {
    return this.peers.map((peer) => peer.status());
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const deadline = this.now() + this.closeTimeoutMs;
      await Promise.all(this.peers.map((peer) => peer.close(deadline)));
    })();
    return this.closing;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
