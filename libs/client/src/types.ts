/**
 * What the client sees of the wire: the messages Tidings (or Aphlict) delivers, the Socket.IO
 * acks, and the client's own status. Type-only imports from @tidings/protocol, so the ES
 * module build runs in browsers (the protocol package itself uses node:crypto and zod).
 */
import type { Notification, SocketIoAck } from '@tidings/protocol';

export type { SocketIoAck } from '@tidings/protocol';

/** A delivered message: the published JSON object as is (`type`, `key`, `subscribers`, `uniqueID`, ...). */
export type TidingsMessage = Notification & { [field: string]: unknown };

export type TransportName = 'aphlict' | 'socket.io';

/** The instance used when none is given. */
export const DEFAULT_INSTANCE = 'default';

export type ClientStatus =
  /** A connection attempt started (`attempt` 0 is the first connection). */
  | { state: 'connecting'; attempt: number }
  /** Connected; after a reconnect, subscriptions were sent again and a replay asked for. */
  | { state: 'open'; reconnected: boolean }
  /** The connection was lost or could not be made; the next attempt starts after `delayMs`. */
  | { state: 'reconnecting'; attempt: number; delayMs: number; reason: string }
  /** Finished: close() was called, or the reconnect policy gave up. */
  | { state: 'closed'; reason: string };

export interface ClientEvents {
  message: [message: TidingsMessage];
  status: [status: ClientStatus];
  /** Something went wrong that the client survives (a refused subscribe after a reconnect, a transport error). */
  error: [error: Error];
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
