/**
 * Client frames on the raw Aphlict socket: `{"command": C, "data": D}`. Decoding happens
 * here, at the edge; whatever does not decode is an `ignored` frame with a reason to log,
 * and the socket keeps working (Aphlict goes deaf on `null`, `42` or a missing `data`).
 */

import { decodePosition, type Position } from './positions';

export const DEFAULT_REPLAY_AGE_MS = 60_000;

export type ClientFrame =
  | { command: 'subscribe'; phids: string[] }
  | { command: 'unsubscribe'; phids: string[] }
  | { command: 'replay'; ageMs: number }
  /** Replay by position (positions.ts). */
  | { command: 'replay-since'; since: Position }
  /** Turns positions on (or off) for this connection. */
  | { command: 'positions'; enabled: boolean }
  | { command: 'ping' }
  | { command: 'ignored'; reason: string };

function phidList(data: unknown): string[] | null {
  if (!Array.isArray(data)) return null;
  for (const phid of data) if (typeof phid !== 'string') return null;
  return data as string[];
}

/** What a `replay` asks for: messages newer than an age (Aphlict), or after a position. */
export type ReplayRequest = { kind: 'age'; ageMs: number } | { kind: 'since'; since: Position };

/**
 * A `replay`'s data on either transport: `{since: {offset, epoch}}` asks by position;
 * anything else is Aphlict's age form (decodeReplayAge).
 */
export function decodeReplayRequest(event: string, data: unknown): { ok: true; request: ReplayRequest } | { ok: false; reason: string } {
  if (data !== null && typeof data === 'object' && !Array.isArray(data) && 'since' in data) {
    const since = decodePosition((data as { since: unknown }).since);
    if (!since) return { ok: false, reason: `${event}: since must be {offset: a non-negative integer, epoch: a string}` };
    return { ok: true, request: { kind: 'since', since } };
  }
  const age = decodeReplayAge(event, data);
  return age.ok ? { ok: true, request: { kind: 'age', ageMs: age.ageMs } } : age;
}

/**
 * The age of a `replay`, from its `data` (both transports): Aphlict's `data.age || 60000`,
 * so a missing or null data, age or 0 means the default; anything else must be a
 * non-negative number of milliseconds.
 */
export function decodeReplayAge(event: string, data: unknown): { ok: true; ageMs: number } | { ok: false; reason: string } {
  if (data === undefined || data === null) return { ok: true, ageMs: DEFAULT_REPLAY_AGE_MS };
  if (typeof data !== 'object' || Array.isArray(data)) return { ok: false, reason: `${event}: data must be an object {age}` };
  const age = (data as { age?: unknown }).age;
  if (age === undefined || age === null || age === 0) return { ok: true, ageMs: DEFAULT_REPLAY_AGE_MS };
  if (typeof age !== 'number' || !Number.isFinite(age) || age < 0) {
    return { ok: false, reason: `${event}: age must be a non-negative number of milliseconds` };
  }
  return { ok: true, ageMs: age };
}

/** Decodes one text frame. Never throws. */
export function parseClientFrame(text: string): ClientFrame {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return { command: 'ignored', reason: 'frame is not JSON' };
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    return { command: 'ignored', reason: 'frame is not a JSON object' };
  }
  const { command, data } = frame as { command?: unknown; data?: unknown };
  switch (command) {
    case 'subscribe':
    case 'unsubscribe': {
      const phids = phidList(data);
      if (!phids) return { command: 'ignored', reason: `${command}: data must be an array of strings` };
      return { command, phids };
    }
    case 'replay': {
      const decoded = decodeReplayRequest('replay', data);
      if (!decoded.ok) return { command: 'ignored', reason: decoded.reason };
      const { request } = decoded;
      return request.kind === 'age' ? { command, ageMs: request.ageMs } : { command: 'replay-since', since: request.since };
    }
    case 'positions':
      if (typeof data !== 'boolean') return { command: 'ignored', reason: 'positions: data must be true or false' };
      return { command, enabled: data };
    case 'ping':
      return { command };
    default:
      return {
        command: 'ignored',
        reason: `unknown command ${typeof command === 'string' ? JSON.stringify(command.slice(0, 64)) : '<none>'}`,
      };
  }
}

/** The answer to `ping`, serialised once. */
export const PONG_FRAME = JSON.stringify({ type: 'pong' });
