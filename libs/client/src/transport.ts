/** One connection attempt over one transport. The client makes a new one for every attempt. */
import type { ReplayRequest } from '@tidings/protocol';
import type { AuthFailure, Position, TidingsMessage } from './types';

export interface TransportHandlers {
  onOpen(): void;
  /** A delivered message; `position` when positions are on (the `tidings` key already taken off). */
  onMessage(message: TidingsMessage, position?: Position): void;
  /** Positions are on: where the instance's history was when they were turned on. */
  onPositions(head: Position): void;
  /** Any sign of life from the server (a pong, a heartbeat, a message). */
  onAlive(): void;
  /** The connection ended, or could not be made; `auth` when the token was why. Not called after close(). */
  onClose(reason: string, auth?: AuthFailure): void;
}

/** What a replay asks for: the kept messages newer than an age (Aphlict), or after a position. */
export type { ReplayRequest } from '@tidings/protocol';

/** How a replay ended. */
export interface ReplayOutcome {
  /**
   * A replay by position on a server that offers positions: whether everything after
   * `since` was sent (false: history no longer holds all of it, or its epoch changed).
   * Undefined for a replay by age, and from a server that does not know positions.
   */
  recovered?: boolean;
  /** With `recovered`: where the instance's history was when the replay read it. */
  head?: Position;
}

export interface Transport {
  /**
   * Raw transport: asks for positions and resolves after a ping round trip with whether the
   * server answered before the pong (an Aphlict server ignores the command). Socket.IO asks
   * in its handshake instead, and has no such method.
   */
  askPositions?(): Promise<boolean>;
  /**
   * Resolves once the server holds the subscriptions (a pong after them, or the Socket.IO
   * ack); rejects with ConnectionLostError when the connection ends first.
   */
  subscribe(phids: string[]): Promise<void>;
  unsubscribe(phids: string[]): Promise<void>;
  /** Asks for kept messages (they arrive as messages) and resolves once all were sent. */
  replay(request: ReplayRequest): Promise<ReplayOutcome>;
  /** Ends the connection without calling onClose. Resolves when it is closed. */
  close(): Promise<void>;
}
