/**
 * The Aphlict peer relay: a node POSTs each message it accepted to the admin ports listed
 * in `cluster`, as Aphlict does. Contract only; the implementation is peer-relay.ts.
 */
import type { Envelope } from '@tidings/protocol';

export interface PeerStatus {
  /** host:port of the peer's admin server. */
  peer: string;
  protocol: 'http' | 'https';
  state: 'up' | 'down' | 'unknown' | 'self';
  sent: number;
  failed: number;
  dropped: number;
  queued: number;
  lastError: string | null;
  /** The fingerprint the peer's receipts carry, once learned. */
  fingerprint: string | null;
}

export interface Relay {
  /**
   * Queues the message for every peer that has not touched it (by learned fingerprint).
   * `touched` is the message's list, this node's fingerprint included. Never throws and
   * never waits for a peer.
   */
  send(message: Envelope, touched: readonly string[]): void;
  status(): PeerStatus[];
  /** Sends what is queued (bounded by a timeout), then stops. Idempotent. */
  close(): Promise<void>;
}
