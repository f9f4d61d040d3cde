/** The Socket.IO acks on the client port, shared by the gateway and libs/client. */

export type SocketIoErrorCode =
  /** The payload of a known event has the wrong shape. */
  | 'invalid_payload'
  /** The event is not part of the contract. */
  | 'unknown_event'
  /** The socket holds the most subscriptions allowed; the PHIDs past the cap were not added. */
  | 'subscription_cap'
  /** The connection's token does not cover these PHIDs (`refused` lists them); the others were added. */
  | 'forbidden'
  /** History could not be read (shared history unreachable). */
  | 'replay_failed'
  /** This socket's previous replay has not finished; one runs at a time per socket. */
  | 'replay_in_progress'
  /** An unexpected failure; logged on the server. */
  | 'internal';

/** `{ok: true}` (with `replayed` after a replay) or `{ok: false, error, message}`. */
export type SocketIoAck =
  | {
      ok: true;
      replayed?: number;
      /** A replay by position: whether the client provably has every message, and where history is now. */
      recovered?: boolean;
      offset?: number;
      epoch?: string;
    }
  | {
      ok: false;
      error: SocketIoErrorCode;
      message: string;
      added?: number;
      /** subscription_cap: how many PHIDs were not added; forbidden: which. */
      refused?: number | string[];
    };
