/**
 * The Socket.IO contract on the client port, and the decoding of its payloads at the edge.
 *
 *   connect:      io(url, { path: '/socket.io/', auth: { instance } })  (no instance: `default`)
 *   subscribe:    emit('subscribe', ['PHID-1', ...], ack)     -> ack({ ok: true })
 *   unsubscribe:  emit('unsubscribe', ['PHID-1', ...], ack)   -> ack({ ok: true })
 *   replay:       emit('replay', { age: ms }, ack)            -> `message` events, then ack({ ok: true, replayed })
 *                 emit('replay', { since: {offset, epoch} }) -> the same, ack with { recovered, offset, epoch }
 *   positions:    io(url, { auth: { positions: true } })     -> `positions` event {offset, epoch}; message(payload, position)
 *   delivery:     on('message', payload)  payload = the JSON object a raw Aphlict socket receives
 *
 * Every payload that does not decode gets `{ ok: false, error, message }` and the socket stays
 * usable (Aphlict's raw sockets go deaf on such frames). The ack types live in
 * @tidings/protocol, shared with libs/client.
 */
import { decodeReplayRequest, type Position, type ReplayRequest, type SocketIoAck } from '@tidings/protocol';

export type { SocketIoAck, SocketIoErrorCode } from '@tidings/protocol';

export type AckFn = (answer: SocketIoAck) => void;

/** Events the client may emit. Payloads are typed `unknown`: they are decoded, not trusted. */
export interface ClientToServerEvents {
  subscribe: (phids: unknown, ack?: AckFn) => void;
  unsubscribe: (phids: unknown, ack?: AckFn) => void;
  replay: (options: unknown, ack?: AckFn) => void;
}

/** Events the server emits. */
export interface ServerToClientEvents {
  /**
   * One notification, exactly as a raw Aphlict socket receives it (parsed JSON); with
   * positions on (auth {positions: true}), its position as the second argument.
   */
  message: (message: Record<string, unknown>, position?: Position) => void;
  /** With positions on: where the instance's history is, once connected. */
  positions: (head: Position) => void;
}

/** The room of sockets of an instance subscribed to a PHID. `~` never occurs in an instance name. */
export function roomOf(instance: string, phid: string): string {
  return `${instance}~${phid}`;
}

/** The same for sockets with positions on (their deliveries carry positions): `~instance~PHID`. */
export function positionedRoomOf(instance: string, phid: string): string {
  return `~${instance}~${phid}`;
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

/**
 * `{age}` in ms (a missing payload, age or 0 means 60 s, Aphlict's default, as on raw
 * sockets), or `{since: {offset, epoch}}`.
 */
export function decodeReplay(data: unknown): Decoded<ReplayRequest> {
  const decoded = decodeReplayRequest('replay', data);
  return decoded.ok ? { ok: true, value: decoded.request } : { ok: false, message: decoded.reason };
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
