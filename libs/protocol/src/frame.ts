/**
 * Client frames on the raw Aphlict socket: `{"command": C, "data": D}`. Decoding happens
 * here, at the edge; whatever does not decode is an `ignored` frame with a reason to log,
 * and the socket keeps working (Aphlict goes deaf on `null`, `42` or a missing `data`).
 */

export const DEFAULT_REPLAY_AGE_MS = 60_000;

export type ClientFrame =
  | { command: 'subscribe'; phids: string[] }
  | { command: 'unsubscribe'; phids: string[] }
  | { command: 'replay'; ageMs: number }
  | { command: 'ping' }
  | { command: 'ignored'; reason: string };

function phidList(data: unknown): string[] | null {
  if (!Array.isArray(data)) return null;
  for (const phid of data) if (typeof phid !== 'string') return null;
  return data as string[];
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
      // Aphlict: `data.age || 60000`. A missing or null data means the default too.
      if (data === undefined || data === null) return { command, ageMs: DEFAULT_REPLAY_AGE_MS };
      if (typeof data !== 'object' || Array.isArray(data)) {
        return { command: 'ignored', reason: 'replay: data must be an object' };
      }
      const age = (data as { age?: unknown }).age;
      if (age === undefined || age === null || age === 0) return { command, ageMs: DEFAULT_REPLAY_AGE_MS };
      if (typeof age !== 'number' || !Number.isFinite(age) || age < 0) {
        return { command: 'ignored', reason: 'replay: age must be a non-negative number of milliseconds' };
      }
      return { command, ageMs: age };
    }
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
