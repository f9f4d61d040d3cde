/**
 * The Aphlict peer relay: a node POSTs each message it accepted to the admin ports listed
 * in `cluster`, as Aphlict does. Contract only; the implementation is peer-relay.ts.
 *
 * Wire format (DESIGN.md section 1): `POST /?instance=<instance>`, `Content-Type:
 * application/json`, the message with `touched` holding the sender's fingerprint; the peer
 * answers `{"fingerprint": ...}`. A sender skips peers whose learned fingerprint is in
 * `touched`, and never sends to a peer whose fingerprint is its own (a node may list
 * itself). Tidings adds the `x-tidings-message-id` header so a Tidings peer dedupes
 * messages that have no `uniqueID`; Aphlict peers ignore it.
 */
import type { Envelope } from '@tidings/protocol';

/**
 * - `unknown`: nothing answered yet;
 * - `up`: the last request got an HTTP answer;
 * - `down`: the last request failed (refused, reset, timed out); retried with backoff;
 * - `self`: the peer's receipt carried this node's own fingerprint; never sent to again.
 */
export type PeerState = 'up' | 'down' | 'unknown' | 'self';

export interface PeerStatus {
  /** host:port of the peer's admin server. */
  peer: string;
  protocol: 'http' | 'https';
  state: PeerState;
  /** Messages the peer answered with 2xx. */
  sent: number;
  /** Requests that failed: no answer, a timeout, or a non-2xx answer. Retries count again. */
  failed: number;
  /** Messages given up: pushed out of a full queue, refused with non-2xx, or left at close. */
  dropped: number;
  /** Messages waiting to be sent. */
  queued: number;
  /** Requests open now. */
  inFlight: number;
  lastError: string | null;
  /** Epoch ms of lastError. */
  lastErrorAt: number | null;
  /** The fingerprint the peer's receipts carry, once learned. */
  fingerprint: string | null;
}

export interface Relay {
  /**
   * Queues the message for every peer that has not touched it (by learned fingerprint).
   * `touched` is the message's list, this node's fingerprint included. Never throws and
   * never rejects. The promise settles once the message's request has been written to the
   * socket of every peer that is up (so it leaves even if this process dies next), or after
   * a short bound (`handoffWaitMs`) when a peer has all its requests in flight; a peer
   * that is down is not waited for. The gateway answers its publisher after this.
   */
  send(message: Envelope, touched: readonly string[]): Promise<void>;
  status(): PeerStatus[];
  /** Sends what is queued (bounded by a timeout), then stops. Idempotent. */
  close(): Promise<void>;
}
