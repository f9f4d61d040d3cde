/**
 * Fuzz: raw client frames against one long-lived gateway process with Redis. Each case opens
 * a fresh socket (so a failing case replays alone while fast-check shrinks it), sends one to
 * four generated frames (arbitrary text or bytes, binary or text, fragmented, control pings,
 * mutated commands) and then a ping. Invariants, per case: the socket answers the ping,
 * unless the contract closes it: a message over limits.maxFrameBytes closes it with 1009, a
 * text frame that is not UTF-8 with 1007 (RFC 6455 8.1); it closes for no other reason;
 * every message it receives (replays) is addressed to a PHID it subscribed to; the process
 * lives and logs no error. Every 100 cases no contained defect was counted (/status/
 * errors.internal); every 500 cases and at the end, the probe proves it delivers.
 */
import WebSocket from 'ws';
import fc from 'fast-check';
import { connectSocket, messagesOf, notification, post, sleep, type TestSocket } from '@tidings/testing';
import { commandFrameTextArb, isValidUtf8, KNOWN_PHIDS, numberLiteralArb, subscribedBy } from './arbitraries';
import { failureMessage, FUZZ_RUNS, FuzzGateway, fuzzTimeoutMs, isComplete, runFuzz } from './harness';

const MAX_FRAME_BYTES = 4_096;
const MAX_SUBSCRIPTIONS = 64;
/** How long a case waits after a contract close before the health check (a cut replay's tail). */
const CLOSE_SETTLE_MS = 15;

type FrameSpec =
  | { kind: 'command'; text: string; as: 'text' | 'binary' | 'fragmented'; cut: number }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array; binary: boolean }
  | { kind: 'control'; payload: Uint8Array }
  | { kind: 'edge'; binary: boolean }
  | { kind: 'oversize'; extra: number; binary: boolean; fragmented: boolean };

/** Well-formed subscribes and replays, so that replays meet subscriptions and history often. */
const asFrame = (text: string): FrameSpec => ({ kind: 'command', text, as: 'text', cut: 0 });
const subscribeArb = fc
  .subarray(KNOWN_PHIDS, { minLength: 1 })
  .map((phids) => asFrame(JSON.stringify({ command: 'subscribe', data: phids })));
const wellFormedArb: fc.Arbitrary<FrameSpec> = fc.oneof(
  subscribeArb,
  fc
    .option(numberLiteralArb, { nil: undefined })
    .map((age) => asFrame(age === undefined ? '{"command":"replay"}' : `{"command":"replay","data":{"age":${age}}}`)),
);

const frameArb: fc.Arbitrary<FrameSpec> = fc.oneof(
  { weight: 4, arbitrary: wellFormedArb },
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('command' as const),
      text: commandFrameTextArb,
      as: fc.constantFrom<'text' | 'binary' | 'fragmented'>('text', 'text', 'text', 'binary', 'fragmented'),
      cut: fc.nat(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('text' as const), text: fc.string({ unit: 'binary', maxLength: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 64 }), binary: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('control' as const), payload: fc.uint8Array({ maxLength: 125 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('edge' as const), binary: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('oversize' as const),
      extra: fc.integer({ min: 1, max: 2_048 }),
      binary: fc.boolean(),
      fragmented: fc.boolean(),
    }),
  },
);

/** A case: often a subscribe first (so a later replay has something to match), then 1-4 frames. */
const caseArb: fc.Arbitrary<FrameSpec[]> = fc
  .tuple(fc.option(subscribeArb, { nil: undefined, freq: 2 }), fc.array(frameArb, { minLength: 1, maxLength: 4 }))
  .map(([first, rest]) => (first ? [first, ...rest] : rest));

/** Bytes of the frame's message (a WebSocket message's payload, whatever its fragments). */
function payloadBytes(frame: FrameSpec): number {
  switch (frame.kind) {
    case 'command':
    case 'text':
      return Buffer.byteLength(frame.text);
    case 'bytes':
      return frame.bytes.length;
    case 'control':
      return 0; // a control frame, not a message
    case 'edge':
      return MAX_FRAME_BYTES;
    case 'oversize':
      return MAX_FRAME_BYTES + frame.extra;
  }
}

/**
 * The close code the contract prescribes for a frame; undefined: the socket stays open.
 * The size is checked first (ws reads it from the header, before any payload).
 */
function closeCodeOf(frame: FrameSpec): number | undefined {
  if (payloadBytes(frame) > MAX_FRAME_BYTES) return 1009;
  if (frame.kind === 'bytes' && !frame.binary && !isValidUtf8(frame.bytes)) return 1007;
  return undefined;
}

/** The frame's application text, as the gateway decodes it (for the subscription model). */
function textOf(frame: FrameSpec): string | undefined {
  if (frame.kind === 'command' || frame.kind === 'text') return frame.text;
  if (frame.kind === 'bytes') return Buffer.from(frame.bytes).toString('utf8');
  return undefined;
}

function send(ws: WebSocket, frame: FrameSpec): void {
  switch (frame.kind) {
    case 'command': {
      if (frame.as !== 'fragmented') return ws.send(frame.as === 'binary' ? Buffer.from(frame.text) : frame.text);
      const at = frame.cut % (frame.text.length + 1);
      ws.send(frame.text.slice(0, at), { fin: false });
      return ws.send(frame.text.slice(at), { fin: true });
    }
    case 'text':
      return ws.send(frame.text);
    case 'bytes':
      return ws.send(Buffer.from(frame.bytes), { binary: frame.binary });
    case 'control':
      return ws.ping(Buffer.from(frame.payload));
    case 'edge':
      // Exactly at the bound: allowed.
      return ws.send(frame.binary ? Buffer.alloc(MAX_FRAME_BYTES, 0x20) : ' '.repeat(MAX_FRAME_BYTES), { binary: frame.binary });
    case 'oversize': {
      const payload = Buffer.alloc(MAX_FRAME_BYTES + frame.extra, 0x20);
      if (!frame.fragmented) return ws.send(payload, { binary: frame.binary });
      // No single fragment is over the bound; the message is.
      const half = payload.length >> 1;
      ws.send(payload.subarray(0, half), { binary: frame.binary, fin: false });
      return ws.send(payload.subarray(half), { binary: frame.binary, fin: true });
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

let fuzz: FuzzGateway;

beforeAll(async () => {
  fuzz = await FuzzGateway.start({
    config: {
      limits: { maxFrameBytes: MAX_FRAME_BYTES, maxSubscriptionsPerSocket: MAX_SUBSCRIPTIONS },
      history: { maxMessages: 4_096, maxAgeMs: 3_600_000 },
    },
  });
  // History for replays to return: each known PHID alone, and in pairs.
  const batch = [];
  for (let i = 0; i < 200; i++) {
    const a = KNOWN_PHIDS[i % KNOWN_PHIDS.length];
    const b = KNOWN_PHIDS[(i * 3 + 1) % KNOWN_PHIDS.length];
    batch.push(post(fuzz.adminUrl, notification(i % 2 ? [a] : [a, b], { n: i })));
  }
  for (const res of await Promise.all(batch)) expect(res.status).toBe(200);
}, 60_000);

afterAll(async () => {
  expect(await fuzz?.close()).toBe(0);
});

describe('fuzz - raw client frames', () => {
  it(
    `${FUZZ_RUNS} cases of generated frames: each socket answers a ping afterwards or is closed as the contract says (1009, 1007); the process lives and delivers`,
    async () => {
      const counts: Record<string, number> = { frames: 0, closed1009: 0, closed1007: 0, replayedMessages: 0, casesWithReplayedMessages: 0 };
      const property = fc.asyncProperty(caseArb, async (frames) => {
        await fuzz.startCase(frames);
        const socket: TestSocket = await connectSocket(fuzz.clientUrl);
        try {
          const subscribed = new Set<string>();
          let expectedClose: number | undefined;
          for (const frame of frames) {
            send(socket.ws, frame);
            counts.frames++;
            const text = textOf(frame);
            if (text !== undefined) for (const phid of subscribedBy(text)) subscribed.add(phid);
            expectedClose = closeCodeOf(frame);
            if (expectedClose !== undefined) break;
          }
          if (expectedClose !== undefined) {
            const { code } = await withTimeout(socket.closed, 5_000, `close ${expectedClose}`);
            if (code !== expectedClose) throw new Error(`closed with ${code}, the contract says ${expectedClose}`);
            counts[`closed${code}`]++;
            // A replay the close cut short may still be finishing on the server: give it time to
            // go wrong within this case, so a crash is blamed on the case that caused it.
            await sleep(CLOSE_SETTLE_MS);
          } else {
            // A close instead of the pong fails at once, with its code.
            const closedEarly = socket.closed.then(({ code, reason }) => {
              throw new Error(`socket closed with ${code} ${reason} although no frame called for it`);
            });
            closedEarly.catch(() => undefined); // the socket is closed after every case
            await Promise.race([socket.roundTrip(5_000), closedEarly]);
          }
          const messages = messagesOf(socket.received);
          for (const m of messages) {
            const to = m.subscribers;
            if (!Array.isArray(to) || !to.some((p) => subscribed.has(p as string))) {
              throw new Error(`received a message for PHIDs it never subscribed to: ${JSON.stringify(m).slice(0, 300)}`);
            }
          }
          counts.replayedMessages += messages.length;
          if (messages.length) counts.casesWithReplayedMessages++;
        } finally {
          socket.ws.terminate();
        }
        await fuzz.afterCase();
      });

      const { details } = await runFuzz('frames', fuzz, property, counts);
      expect({ failed: details.failed, message: failureMessage(details, fuzz) }).toEqual({ failed: false, message: 'no failure' });
      expect({ complete: isComplete(details), cases: details.numRuns }).toEqual({ complete: true, cases: details.numRuns });
      // Positive controls: the generators reach each contract close and replays that deliver.
      expect(counts.closed1009).toBeGreaterThan(0);
      expect(counts.closed1007).toBeGreaterThan(0);
      expect(counts.casesWithReplayedMessages).toBeGreaterThan(0);
      await fuzz.probe();
      // Every fuzz socket has left the hub: only the probe is still counted.
      await fuzz.expectConnections(1, 0);
      await fuzz.assertNoInternalErrors();
      expect(fuzz.deaths).toEqual([]);
    },
    fuzzTimeoutMs(5),
  );
});
