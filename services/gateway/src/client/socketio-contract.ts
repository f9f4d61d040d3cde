/**
 * The Socket.IO contract on the client port, and the decoding of its payloads at the edge.
 *
 *   connect:      io(url, { path: '/socket.io/', auth: { instance } })  (no instance: `default`)
 *   subscribe:    emit('subscribe', ['PHID-1', ...], ack)     -> ack({ ok: true })
 *   unsubscribe:  emit('unsubscribe', ['PHID-1', ...], ack)   -> ack({ ok: true })
 *   replay:       emit('replay', { age: ms }, ack)            -> `message` events, then ack({ ok: true, replayed })
 *   delivery:     on('message', payload)  payload = the JSON object a raw Aphlict socket receives
 *
 * Every payload that does not decode gets `{ ok: false, error, message }` and the socket stays
 * usable (Aphlict's raw sockets go deaf on such frames). libs/client keeps a copy of these
 * types because it may depend on @tidings/protocol only.
 */
import { DEFAULT_REPLAY_AGE_MS } from '@tidings/protocol';

export type SocketIoErrorCode =
  /** The payload of a known event has the wrong shape. */
  | 'invalid_payload'
  /** The event is not part of the contract. */
  | 'unknown_event'
  /** The socket holds the most subscriptions allowed; the PHIDs past the cap were not added. */
  | 'subscription_cap'
  /** History could not be read (shared history unreachable). */
  | 'replay_failed'
  /** An unexpected failure; logged on the server. */
  | 'internal';

export type SocketIoAck =
  | { ok: true; replayed?: number }
  | { ok: false; error: SocketIoErrorCode; message: string; added?: number; refused?: number };

export type AckFn = (answer: SocketIoAck) => void;

/** Events the client may emit. Payloads are typed `unknown`: they are decoded, not trusted. */
export interface ClientToServerEvents {
  subscribe: (phids: unknown, ack?: AckFn) => void;
  unsubscribe: (phids: unknown, ack?: AckFn) => void;
  replay: (options: unknown, ack?: AckFn) => void;
}

/** Events the server emits. */
export interface ServerToClientEvents {
  /** One notification, exactly as a raw Aphlict socket receives it (parsed JSON). */
  message: (message: Record<string, unknown>) => void;
}

/** The room of sockets of an instance subscribed to a PHID. `~` never occurs in an instance name. */
export function roomOf(instance: string, phid: string): string {
  return `${instance}~${phid}`;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; message: string };

export function decodePhids(event: string, data: unknown): Decoded<string[]> {
  if (!Array.isArray(data)) return { ok: false, message: `${event}: the payload must be an array of PHID strings` };
  for (const phid of data) {
    if (typeof phid !== 'string' || phid === '') {
      return { ok: false, message: `${event}: every PHID must be a non-empty string` };
    }
  }
  return { ok: true, value: data as string[] };
}

/** `{age}` in ms; a missing payload, age or 0 means 60 s (Aphlict's default). */
export function decodeReplay(data: unknown): Decoded<number> {
  if (data === undefined || data === null) return { ok: true, value: DEFAULT_REPLAY_AGE_MS };
  if (typeof data !== 'object' || Array.isArray(data)) return { ok: false, message: 'replay: the payload must be an object {age}' };
  const age = (data as { age?: unknown }).age;
  if (age === undefined || age === null || age === 0) return { ok: true, value: DEFAULT_REPLAY_AGE_MS };
  if (typeof age !== 'number' || !Number.isFinite(age) || age < 0) {
    return { ok: false, message: 'replay: age must be a non-negative number of milliseconds' };
  }
  return { ok: true, value: age };
}

/**
 * Splits an event's arguments into payload and ack. Socket.IO passes the ack last, and only
 * when the client asked for one, so `emit('subscribe', ack)` arrives as `[ack]`.
 */
export function splitArgs(args: unknown[]): { data: unknown; ack: AckFn } {
  const last = args[args.length - 1];
  if (typeof last === 'function') {
    return { data: args.length > 1 ? args[0] : undefined, ack: last as AckFn };
  }
  return { data: args[0], ack: () => undefined };
}
