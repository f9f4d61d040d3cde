/**
 * Notifications as they travel from a publisher to sockets. The object a backend posts is
 * passed through to clients as is (Aphlict compatibility); Tidings only reads
 * `subscribers`, `touched` and `uniqueID`, and appends its fingerprint to `touched`.
 */

/** A published message as a JSON object; unknown fields are kept and forwarded. */
export interface Notification {
  subscribers: string[];
  touched?: string[];
  uniqueID?: string;
  type?: string;
  key?: string | number;
  [field: string]: unknown;
}

/** The instance (tenant) used when a request names none. */
export const DEFAULT_INSTANCE = 'default';

/** Error codes sent in admin 4xx bodies: `{"error": CODE, "message": TEXT}`. */
export type PublishErrorCode =
  | 'invalid_json'
  | 'not_an_object'
  | 'invalid_subscribers'
  | 'invalid_touched'
  | 'invalid_unique_id'
  | 'too_deep'
  | 'body_too_large'
  | 'invalid_instance';

/**
 * Deepest nesting of arrays and objects a published message may have. Notifications are
 * shallow; a body nested thousands deep parses, but cannot be serialised again (the
 * stack overflows), so it is refused where it enters.
 */
export const MAX_MESSAGE_DEPTH = 64;

/** Whether a parsed JSON value nests deeper than `max` (stops as soon as it does). */
function nestsDeeperThan(value: unknown, max: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (max === 0) return true;
  const children = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  for (const child of children) if (nestsDeeperThan(child, max - 1)) return true;
  return false;
}

/**
 * Longest message id, from a body's `uniqueID` or a peer's `x-tidings-message-id` header
 * (Phorge's are 32 characters): ids are kept per node and in Redis keys, so they are bounded.
 */
export const MAX_MESSAGE_ID_LENGTH = 128;

export type PublishCheck =
  | { ok: true; message: Notification }
  | { ok: false; code: PublishErrorCode; message: string };

/**
 * Checks a parsed publish body. Runs before anything is recorded or delivered, so a
 * malformed message never reaches history (an Aphlict defect) and never reaches a peer.
 */
export function checkPublishBody(body: unknown): PublishCheck {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    // Arrays are refused: Aphlict loses `touched` on them and relays them forever.
    return { ok: false, code: 'not_an_object', message: 'the body must be a JSON object' };
  }
  const message = body as Record<string, unknown>;
  const subscribers = message.subscribers;
  if (!Array.isArray(subscribers) || !subscribers.every((s) => typeof s === 'string')) {
    return {
      ok: false,
      code: 'invalid_subscribers',
      message: '"subscribers" must be an array of strings',
    };
  }
  if (nestsDeeperThan(message, MAX_MESSAGE_DEPTH)) {
    return { ok: false, code: 'too_deep', message: `the body nests arrays and objects more than ${MAX_MESSAGE_DEPTH} deep` };
  }
  const uniqueID = message.uniqueID;
  if (typeof uniqueID === 'string' && uniqueID.length > MAX_MESSAGE_ID_LENGTH) {
    return { ok: false, code: 'invalid_unique_id', message: `"uniqueID" has at most ${MAX_MESSAGE_ID_LENGTH} characters` };
  }
  const touched = message.touched;
  if (touched !== undefined && (!Array.isArray(touched) || !touched.every((t) => typeof t === 'string'))) {
    return { ok: false, code: 'invalid_touched', message: '"touched" must be an array of strings' };
  }
  return { ok: true, message: message as Notification };
}

/** Parses a publish body's text; JSON syntax errors become `invalid_json`. */
export function parsePublishBody(text: string): PublishCheck {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return { ok: false, code: 'invalid_json', message: `the body is not JSON: ${(err as Error).message}` };
  }
  return checkPublishBody(body);
}
