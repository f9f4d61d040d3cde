/**
 * Positions: recovery a client can trust (beyond Aphlict; opt-in, so Aphlict's bytes do not
 * change for anyone who does not ask). History gives every message of an instance an
 * `offset` (strictly increasing) and the instance's history an `epoch`, a random id that
 * changes whenever history was lost. A client that holds `{offset, epoch}` asks for what
 * came after it and learns whether it provably has everything (`recovered`).
 *
 *   raw:       {"command":"positions","data":true}
 *              -> {"type":"positions","offset":M,"epoch":"E"}   (where the instance is now)
 *              then every delivered frame carries "tidings":{"offset":N,"epoch":"E"}
 *              {"command":"replay","data":{"since":{"offset":N,"epoch":"E"}}}
 *              -> the kept messages after N that match, then
 *                 {"type":"replayed","recovered":BOOL,"offset":M,"epoch":"E"}
 *   Socket.IO: auth {positions: true}; `positions` event {offset, epoch} once connected;
 *              message(payload, {offset, epoch}); emit('replay', {since}) acks
 *              {ok: true, replayed, recovered, offset, epoch}.
 */

export interface Position {
  /** The message's place in its instance's history: strictly increasing, from 1. */
  offset: number;
  /** Which history the offset belongs to; a new epoch means the old history was lost. */
  epoch: string;
}

/** Longest epoch accepted from a client (the server's are 16 hex digits). */
const MAX_EPOCH_LENGTH = 64;

/** Decodes a client's `{offset, epoch}`; null when it is not one. */
export function decodePosition(value: unknown): Position | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { offset, epoch } = value as { offset?: unknown; epoch?: unknown };
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return null;
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > MAX_EPOCH_LENGTH) return null;
  return { offset, epoch };
}

/**
 * A delivered frame with its position: the message's JSON with one key added at its end
 * (`"tidings":{...}`), built from the text so the rest stays byte for byte what everyone
 * else gets. `frame` is a JSON object's text.
 */
export function framedWithPosition(frame: string, position: Position): string {
  const tail = `"tidings":{"offset":${position.offset},"epoch":${JSON.stringify(position.epoch)}}}`;
  const body = frame.slice(0, frame.lastIndexOf('}'));
  return /^\{\s*$/.test(body) ? `{${tail}` : `${body},${tail}`;
}

/** The answer to `positions`: where the instance's history is now. */
export function positionsFrame(head: Position): string {
  return JSON.stringify({ type: 'positions', offset: head.offset, epoch: head.epoch });
}

/** The frame that ends a replay by position. */
export function replayedFrame(result: { recovered: boolean; offset: number; epoch: string }): string {
  return JSON.stringify({ type: 'replayed', recovered: result.recovered, offset: result.offset, epoch: result.epoch });
}
