/**
 * fast-check arbitraries shared by the fuzz targets: PHIDs, odd JSON, and client frames of
 * the raw Aphlict protocol (`{"command": C, "data": D}`), as text, so that forms a
 * JSON.stringify never writes (duplicate keys, `__proto__` keys, odd number literals, deep
 * nesting) reach the gateway too.
 */
import fc from 'fast-check';

/**
 * PHIDs the fuzz sockets, the history and the publishes share, so subscriptions and
 * replays meet; with names that break a plain object used as a map (an Aphlict defect).
 */
export const KNOWN_PHIDS = ['PHID-FUZZ-A', 'PHID-FUZZ-B', 'PHID-FUZZ-C', '__proto__', 'constructor', 'toString', 'hasOwnProperty', ''];

export const phidArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...KNOWN_PHIDS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);

export const phidListArb = fc.array(phidArb, { maxLength: 8 });

/** Any JSON value (objects, arrays, strings with any code point, numbers). */
export const jsonArb: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });

/** Number literals JSON.parse reads oddly: Infinity, -0, 0 by underflow, unsafe integers. */
export const numberLiteralArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('1e400', '-1e400', '-0', '0', '1e-400', '0.5', '-1', '9007199254740993', '1E3', '60000', '2147483648', '1e21', '-0.0'),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.integer().map(String),
);

/** JSON text nested `depth` levels deep, as arrays or as an object chain. */
export function deepJsonText(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

export const deepJsonArb = (maxDepth: number): fc.Arbitrary<string> =>
  fc
    .record({ depth: fc.integer({ min: 1, max: maxDepth }), kind: fc.constantFrom<'array' | 'object'>('array', 'object') })
    .map(({ depth, kind }) => deepJsonText(depth, kind));

const commandNameArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('subscribe', 'unsubscribe', 'replay', 'ping') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('Subscribe', 'PING', ' ping', 'replay\u0000', '', '__proto__', 'constructor', 'toString', 'hasOwnProperty'),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  // Not a string at all.
  { weight: 1, arbitrary: jsonArb },
);

/** The `data` member's JSON text; undefined: no `data` member. */
const dataTextArb: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: phidListArb.map((l) => JSON.stringify(l)) },
  { weight: 2, arbitrary: fc.array(fc.oneof(phidArb, jsonArb), { maxLength: 5 }).map((l) => JSON.stringify(l)) },
  { weight: 3, arbitrary: fc.oneof(numberLiteralArb, jsonArb.map((v) => JSON.stringify(v))).map((age) => `{"age":${age}}`) },
  { weight: 2, arbitrary: jsonArb.map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: deepJsonArb(3_000) },
);

/** How the frame's JSON object is written. */
type FrameForm = 'plain' | 'duplicate-command' | 'proto-key' | 'spaced' | 'extra-keys';

/**
 * A client frame's text: mostly well-formed commands with mutated data, some with odd
 * commands or odd object forms. Never over a few tens of kB.
 */
export const commandFrameTextArb: fc.Arbitrary<string> = fc
  .record({
    command: commandNameArb,
    data: dataTextArb,
    form: fc.constantFrom<FrameForm>('plain', 'plain', 'plain', 'duplicate-command', 'proto-key', 'spaced', 'extra-keys'),
    extra: fc.dictionary(fc.string({ maxLength: 8 }), jsonArb, { maxKeys: 3 }),
  })
  .map(({ command, data, form, extra }) => {
    const members = [`"command":${JSON.stringify(command) ?? 'null'}`];
    if (data !== undefined) members.push(`"data":${data}`);
    switch (form) {
      case 'duplicate-command':
        // The last one wins in JSON.parse.
        members.unshift('"command":"ping"');
        break;
      case 'proto-key':
        members.push('"__proto__":{"command":"subscribe","data":["PHID-FUZZ-A"]}');
        break;
      case 'extra-keys':
        for (const [k, v] of Object.entries(extra)) members.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
        break;
      case 'spaced':
        return `\n\t{ ${members.join(' ,\r\n ')} }  `;
      default:
        break;
    }
    return `{${members.join(',')}}`;
  });

/** The command a frame's text carries as the gateway decodes it (a JSON object's `command`), if any. */
export function commandOf(text: string): unknown {
  try {
    const frame: unknown = JSON.parse(text);
    return frame !== null && typeof frame === 'object' && !Array.isArray(frame) ? (frame as { command?: unknown }).command : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The PHIDs a frame subscribes under the documented contract (`subscribe` with an array of
 * strings), decoding the text as the gateway does: the fuzz sockets' model of what they may
 * be sent. The cap may refuse some: an over-estimate only weakens the check, never fails it.
 */
export function subscribedBy(text: string): string[] {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return [];
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) return [];
  const { command, data } = frame as { command?: unknown; data?: unknown };
  if (command !== 'subscribe' || !Array.isArray(data) || !data.every((p) => typeof p === 'string')) return [];
  return data as string[];
}

/** Whether bytes are valid UTF-8 (a text frame that is not gets the WebSocket close 1007). */
export function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
