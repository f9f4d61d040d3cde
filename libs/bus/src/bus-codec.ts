/**
 * What travels on the bus channel, as JSON text: a discriminated union keyed by `t`.
 * Decoding happens at the edge: anything malformed becomes `{ ok: false }` with a reason,
 * so a subscriber callback never throws on foreign or corrupted traffic.
 */
import type { Envelope } from '@tidings/protocol';
import type { BusMessage } from './bus';

export type BusFrame =
  /**
   * A message accepted by node `o`; `p` is its position in history ([offset, epoch]) when
   * the store that published it assigned one (the Redis append script splices it in).
   */
  | { t: 'msg'; o: string; p?: [number, string]; e: Envelope }
  /** A round-trip probe; only its sender acts on it. */
  | { t: 'canary'; o: string; n: string };

export type Decoded = { ok: true; frame: BusFrame } | { ok: false; reason: string };

export function encodeMessage(origin: string, envelope: Envelope): string {
  const e: Envelope = {
    id: envelope.id,
    instance: envelope.instance,
    subscribers: envelope.subscribers,
    frame: envelope.frame,
    acceptedAt: envelope.acceptedAt,
  };
  if (envelope.touched) e.touched = envelope.touched;
  return JSON.stringify({ t: 'msg', o: origin, e } satisfies BusFrame);
}

/**
 * How every message frame `origin` sends begins: a node recognises its own echo by this
 * prefix and drops it without parsing (on an N-node bus, 1/N of what arrives is echo).
 */
export function messagePrefix(origin: string): string {
  return `{"t":"msg","o":${JSON.stringify(origin)},`;
}

export function encodeCanary(origin: string, nonce: string): string {
  return JSON.stringify({ t: 'canary', o: origin, n: nonce } satisfies BusFrame);
}

const isString = (v: unknown): v is string => typeof v === 'string';

/** Checks an envelope read from Redis (bus or shared history). */
export function isEnvelope(v: unknown): v is Envelope {
  if (v === null || typeof v !== 'object') return false;
  const e = v as Record<string, unknown>;
  return (
    isString(e.id) &&
    e.id !== '' &&
    isString(e.instance) &&
    e.instance !== '' &&
    Array.isArray(e.subscribers) &&
    e.subscribers.every(isString) &&
    isString(e.frame) &&
    typeof e.acceptedAt === 'number' &&
    Number.isFinite(e.acceptedAt) &&
    (e.touched === undefined || (Array.isArray(e.touched) && e.touched.every(isString)))
  );
}

export function decodeBusFrame(text: string): Decoded {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, reason: 'not an object' };
  const f = raw as Record<string, unknown>;
  if (!isString(f.o) || f.o === '') return { ok: false, reason: 'no origin' };
  if (f.t === 'msg') {
    if (!isEnvelope(f.e)) return { ok: false, reason: 'malformed envelope' };
    if (f.p !== undefined) {
      const p = f.p as unknown[];
      if (!Array.isArray(p) || p.length !== 2 || !Number.isSafeInteger(p[0]) || !isString(p[1])) return { ok: false, reason: 'malformed position' };
      return { ok: true, frame: { t: 'msg', o: f.o, p: [p[0] as number, p[1]], e: f.e } };
    }
    return { ok: true, frame: { t: 'msg', o: f.o, e: f.e } };
  }
  if (f.t === 'canary') {
    if (!isString(f.n)) return { ok: false, reason: 'malformed canary' };
    return { ok: true, frame: { t: 'canary', o: f.o, n: f.n } };
  }
  return { ok: false, reason: `unknown type ${JSON.stringify(String(f.t).slice(0, 32))}` };
}

/** The BusMessage the gateway sees for a decoded message frame. */
export function toBusMessage(frame: Extract<BusFrame, { t: 'msg' }>): BusMessage {
  const message: BusMessage = { ...frame.e, origin: frame.o };
  if (frame.p) message.position = { offset: frame.p[0], epoch: frame.p[1] };
  return message;
}

/**
 * A message frame split where a store splices in its position: `head` is the frame up to
 * and including the origin (messagePrefix), `tail` the rest, so that
 * `head + '"p":[OFFSET,"EPOCH"],' + tail` is the frame with its position.
 */
export function splitForPosition(origin: string, envelope: Envelope): { head: string; tail: string } {
  const text = encodeMessage(origin, envelope);
  const head = messagePrefix(origin);
  return { head, tail: text.slice(head.length) };
}
