/**
 * What the client sees of the wire: the messages Tidings (or Aphlict) delivers, the Socket.IO
 * acks, and the client's own status. Type-only imports from @tidings/protocol, so the ES
 * module build runs in browsers (the protocol package itself uses node:crypto and zod).
 */
import type { Notification, Position, SocketIoAck } from '@tidings/protocol';

export type { SocketIoAck, Position } from '@tidings/protocol';

/** A delivered message: the published JSON object as is (`type`, `key`, `subscribers`, `uniqueID`, ...). */
export type TidingsMessage = Notification & { [field: string]: unknown };

export type TransportName = 'aphlict' | 'socket.io';

/** The instance used when none is given. */
export const DEFAULT_INSTANCE = 'default';

/**
 * Why a connection failed or ended for its token, when that is known:
 * - `unauthorized`: the server refused the token (HTTP 401 on the raw WebSocket upgrade,
 *   which only Node's WebSocket reports, browsers hide it; Socket.IO `connect_error`
 *   `unauthorized`);
 * - `token_expired`: the server closed the connection because its token expired (raw close
 *   code 4001); the client fetches a new token and reconnects at once;
 * - `token_unavailable`: `getToken()` threw, rejected, gave no non-empty string, or did not
 *   answer within `connectTimeoutMs`.
 */
export type AuthFailure = 'unauthorized' | 'token_expired' | 'token_unavailable';

/** Close code of a raw connection whose token expired (the server's TOKEN_EXPIRED). */
export const TOKEN_EXPIRED_CLOSE_CODE = 4001;

export type ClientStatus =
  /** A connection attempt started (`attempt` 0 is the first connection). */
  | { state: 'connecting'; attempt: number }
  /**
   * Connected, with the subscriptions in place on the server; after a reconnect, also the
   * replay of what the client missed has been delivered. `recovered` tells how that replay
   * went:
   * - `true`: it was a replay by position, and the server provably sent every message
   *   after the client's position: nothing was missed;
   * - `false`: a replay by position, but the server's history no longer holds everything
   *   since (trimmed by `history.maxMessages` or age, or lost: a new epoch after a restart
   *   or a flush), or the replay failed: messages may be lost, and the application must
   *   fetch its state again (reload what it shows from its own backend);
   * - absent: no replay (the first connection, `replayOnReconnect: false`), or a replay by
   *   age (a server without positions, such as Aphlict, or no position held yet), which
   *   cannot tell whether anything is missing.
   */
  | { state: 'open'; reconnected: boolean; recovered?: boolean }
  /**
   * The connection was lost or could not be made; the next attempt starts after `delayMs`.
   * `auth` is set when it was for the token (see AuthFailure).
   */
  | { state: 'reconnecting'; attempt: number; delayMs: number; reason: string; auth?: AuthFailure }
  /** Finished: close() was called, or the reconnect policy gave up. */
  | { state: 'closed'; reason: string; auth?: AuthFailure };

export interface ClientEvents {
  /**
   * A message, once (duplicates dropped). With positions on, `position` is its place in the
   * instance's history; the wire's `tidings` key is not part of `message`.
   */
  message: [message: TidingsMessage, position?: Position];
  status: [status: ClientStatus];
  /**
   * Something went wrong that the client survives (a refused subscribe after a reconnect, a
   * transport error); a TidingsAuthError when the server refused the token or getToken()
   * failed (the client tries again with a fresh token, as its reconnect policy says).
   */
  error: [error: Error];
}

/** The server refused the connection's token, or getToken() failed. Emitted as `error`. */
export class TidingsAuthError extends Error {
  override name = 'TidingsAuthError';
  constructor(
    readonly code: Exclude<AuthFailure, 'token_expired'>,
    message: string,
  ) {
    super(message);
  }
}

/** Raised when the server refuses a subscribe, unsubscribe or replay (Socket.IO error ack). */
export class TidingsAckError extends Error {
  override name = 'TidingsAckError';
  constructor(
    readonly code: string,
    message: string,
    readonly ack: SocketIoAck,
  ) {
    super(message);
  }
}

/**
 * A wait that the connection's end cut short: a `replay()` whose connection ended before the
 * replay did. subscribe() never rejects with it: it waits for the next connection instead.
 */
export class TidingsConnectionLostError extends Error {
  override name = 'TidingsConnectionLostError';
}
