/** One connection attempt over one transport. The client makes a new one for every attempt. */
import type { AuthFailure, TidingsMessage } from './types';

export interface TransportHandlers {
  onOpen(): void;
  onMessage(message: TidingsMessage): void;
  /** Any sign of life from the server (a pong, a heartbeat, a message). */
  onAlive(): void;
  /** The connection ended, or could not be made; `auth` when the token was why. Not called after close(). */
  onClose(reason: string, auth?: AuthFailure): void;
}

export interface Transport {
  /** Resolves once the server holds the subscriptions (a pong after them, or the Socket.IO ack). */
  subscribe(phids: string[]): Promise<void>;
  unsubscribe(phids: string[]): Promise<void>;
  /** Asks for the kept messages newer than `ageMs`; they arrive as messages. */
  replay(ageMs: number): Promise<void>;
  /** Ends the connection without calling onClose. Resolves when it is closed. */
  close(): Promise<void>;
}
