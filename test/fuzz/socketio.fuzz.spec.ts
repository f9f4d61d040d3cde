/**
 * Fuzz: Socket.IO events against one long-lived gateway process with Redis. Each case opens a
 * fresh socket.io-client socket (with a generated `auth.instance`), then sends one to three
 * generated things: events with arbitrary names, payloads (JSON, binary attachments, deep
 * nesting) and with or without an ack, or raw Socket.IO packets written straight to the
 * engine (reserved event names, namespaces, ack ids, binary packets without their
 * attachments, garbage), or binary frames.
 *
 * Invariants, per case: a valid instance connects and an invalid one gets a connect_error;
 * every event that asked for an ack gets one, shaped as the contract says ({ok, ...};
 * unknown events `unknown_event`); a well-formed event under limits.maxFrameBytes never
 * disconnects the socket, and afterwards the socket still acks `subscribe`; a raw packet may
 * make Socket.IO close the connection (its own protocol rule) but never hangs it: it acks or
 * it closes (or, after a raw DISCONNECT packet, the socket has left the namespace and its
 * events are ignored, as Socket.IO does). The process lives and logs no error. Every 100
 * cases: a Socket.IO CONTROL client of the same node has every message published to its PHID
 * so far, once, in order, and no contained defect was counted (/status/ errors.internal);
 * every 500 cases and at the end, the probe proves raw sockets are still delivered to.
 */
import { io, type Socket } from 'socket.io-client';
import fc from 'fast-check';
import { notification, post, sleep } from '@tidings/testing';
import { deepJsonText, jsonArb, phidListArb, numberLiteralArb } from './arbitraries';
import { failureMessage, FUZZ_RUNS, FuzzGateway, fuzzTimeoutMs, isComplete, runFuzz } from './harness';

const MAX_FRAME_BYTES = 16_384;
const ACK_TIMEOUT_MS = 5_000;
const CONTROL_PHID = 'PHID-CONTROL-socketio';
/** Names socket.io-client refuses to emit; they reach the server only as raw packets. */
const CLIENT_RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
/** The documented instance rule: 1-128 characters without white space, `/` or `~`. */
const VALID_INSTANCE = /^[^\s/~]{1,128}$/;

type Step =
  | { kind: 'emit'; event: string; args: unknown[]; ack: boolean }
  | { kind: 'packet'; text: string }
  | { kind: 'binary'; bytes: Uint8Array };

interface SioCase {
  /** `auth.instance`; undefined: no auth. */
  instance: unknown;
  steps: Step[];
}

const eventNameArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('subscribe', 'unsubscribe', 'replay') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('message', 'error', 'ping', 'pong', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'Subscribe', 'subscribe ', ''),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
);

/** A payload value: PHID lists, replay options, any JSON, binary, and nests of them. */
const payloadArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: phidListArb },
  { weight: 3, arbitrary: fc.oneof(numberLiteralArb.map((n) => ({ age: JSON.parse(n) as number })), fc.record({ age: jsonArb })) },
  { weight: 3, arbitrary: jsonArb },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.record({ nested: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)), age: fc.nat() }) },
  // Nested deep (the client encodes it; its binary check recurses, so bounded).
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 1_000 }).map((d) => JSON.parse(deepJsonText(d, 'array')) as unknown) },
  // Over the frame bound: the transport is closed (as for raw sockets).
  { weight: 1, arbitrary: fc.integer({ min: MAX_FRAME_BYTES, max: MAX_FRAME_BYTES * 2 }).map((n) => 'x'.repeat(n)) },
);

const emitArb: fc.Arbitrary<Step> = fc
  .record({
    kind: fc.constant('emit' as const),
    event: eventNameArb.filter((e) => !CLIENT_RESERVED.has(e)),
    args: fc.array(payloadArb, { maxLength: 3 }),
    ack: fc.boolean(),
  })
  .map((s) => s);

/** Socket.IO packet text (the engine adds its own `4` message type). */
const packetTextArb: fc.Arbitrary<string> = fc.oneof(
  // Events and acks with any name, namespace and id.
  fc
    .record({
      type: fc.constantFrom('2', '3', '5', '6'),
      attachments: fc.option(fc.oneof(fc.nat({ max: 3 }), fc.constant(999_999)), { nil: undefined }),
      nsp: fc.constantFrom('', '/,', '/admin,', '/socket.io,', 'x,'),
      id: fc.option(fc.oneof(fc.nat().map(String), fc.constant('99999999999999999999999')), { nil: '' }),
      event: fc.oneof(fc.constantFrom(...CLIENT_RESERVED), eventNameArb, fc.integer(), jsonArb),
      args: fc.array(payloadArb, { maxLength: 2 }),
    })
    .map(({ type, attachments, nsp, id, event, args }) => {
      const head = attachments === undefined || (type !== '5' && type !== '6') ? type : `${type}${attachments}-`;
      const body = JSON.stringify([event, ...args], (_k, v: unknown) => (Buffer.isBuffer(v) ? { _placeholder: true, num: 0 } : v));
      return `${head}${nsp}${id}${body}`;
    }),
  // Namespace connects, disconnects and errors, by hand.
  fc.constantFrom('0', '0{}', '0/admin,{}', '0/,{"instance":"x"}', '1', '1/admin,', '4"x"', '4{}', '7', '9', '', '2', '2[]', '2{}', '2["subscribe"'),
  fc.string({ maxLength: 32 }),
  fc.string({ unit: 'binary', maxLength: 16 }),
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: emitArb },
  { weight: 2, arbitrary: packetTextArb.map((text) => ({ kind: 'packet' as const, text })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }).map((bytes) => ({ kind: 'binary' as const, bytes })) },
);

const caseArb: fc.Arbitrary<SioCase> = fc.record({
  instance: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(undefined, 'sio', 'default') },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
    { weight: 1, arbitrary: fc.oneof(fc.constant('x'.repeat(129)), fc.constant('a/b'), fc.constant('a~b'), fc.constant(' '), jsonArb) },
  ),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 3 }),
});

/** Whether the server must admit the instance (absent, null or empty: `default`). */
function isAdmitted(instance: unknown): boolean {
  if (instance === undefined || instance === null || instance === '') return true;
  return typeof instance === 'string' && VALID_INSTANCE.test(instance);
}

/** Bytes a well-formed event takes on the wire, roughly: over the bound, a close is allowed. */
function isOversize(step: Step): boolean {
  if (step.kind !== 'emit') return false;
  const text = JSON.stringify([step.event, ...step.args]) ?? '';
  return Buffer.byteLength(text) > MAX_FRAME_BYTES - 64;
}

/** The contract's ack: an object with a boolean `ok`; unknown events `unknown_event`. */
function checkAck(event: string, answer: unknown): void {
  const a = answer as { ok?: unknown; error?: unknown };
  if (a === null || typeof a !== 'object' || typeof a.ok !== 'boolean') throw new Error(`ack of ${JSON.stringify(event)} is not {ok}: ${JSON.stringify(answer)}`);
  const known = event === 'subscribe' || event === 'unsubscribe' || event === 'replay';
  if (!known && (a.ok || a.error !== 'unknown_event')) throw new Error(`ack of unknown event ${JSON.stringify(event)}: ${JSON.stringify(answer)}`);
  if (!a.ok && typeof a.error !== 'string') throw new Error(`refusal of ${JSON.stringify(event)} without an error code: ${JSON.stringify(answer)}`);
}

let fuzz: FuzzGateway;
let control: { socket: Socket; received: Record<string, unknown>[]; expected: string[] };

function connect(instance: unknown): Socket {
  return io(`http://127.0.0.1:${fuzz.clientPort}`, {
    path: '/socket.io/',
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: instance === undefined ? undefined : { instance },
  });
}

/** Resolves 'connect' or the connect_error's message. */
function connected(socket: Socket): Promise<'connect' | string> {
  return new Promise((resolve) => {
    socket.once('connect', () => resolve('connect'));
    socket.once('connect_error', (err: Error) => resolve(err.message));
  });
}

async function connectControl(): Promise<void> {
  const socket = connect('default');
  if ((await connected(socket)) !== 'connect') throw new Error('control did not connect');
  const received: Record<string, unknown>[] = [];
  socket.on('message', (m: Record<string, unknown>) => received.push(m));
  const ack = (await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('subscribe', [CONTROL_PHID])) as { ok: boolean };
  if (!ack.ok) throw new Error('control could not subscribe');
  control = { socket, received, expected: [] };
}

/** Publishes one message to the control and checks it has every one published so far, once. */
async function checkControl(): Promise<void> {
  if (!control.socket.connected) throw new Error('the Socket.IO control client was disconnected');
  const message = notification([CONTROL_PHID]);
  const res = await post(fuzz.adminUrl, message);
  if (res.status !== 200) throw new Error(`control publish answered ${res.status}: ${res.text.slice(0, 200)}`);
  control.expected.push(message.uniqueID as string);
  const deadline = Date.now() + 5_000;
  while (control.received.length < control.expected.length && Date.now() < deadline) await sleep(2);
  const got = control.received.map((m) => m.uniqueID);
  if (got.length !== control.expected.length || !control.expected.every((id, i) => got[i] === id)) {
    throw new Error(`Socket.IO control: expected ${JSON.stringify(control.expected)}, got ${JSON.stringify(got)}`);
  }
}

beforeAll(async () => {
  fuzz = await FuzzGateway.start({
    config: {
      limits: { maxFrameBytes: MAX_FRAME_BYTES, maxSubscriptionsPerSocket: 64 },
      history: { maxMessages: 4_096, maxAgeMs: 3_600_000 },
    },
  });
  // History for replays to return.
  for (let i = 0; i < 100; i++) {
    const res = await post(fuzz.adminUrl, notification(['PHID-FUZZ-A', 'constructor'], { n: i }), { instance: i % 2 ? 'sio' : 'default' });
    expect(res.status).toBe(200);
  }
  await connectControl();
}, 60_000);

afterAll(async () => {
  control?.socket.disconnect();
  expect(await fuzz?.close()).toBe(0);
});

describe('fuzz - Socket.IO events', () => {
  it(
    `${FUZZ_RUNS} cases of generated events and packets: acks as the contract says, no hang, the socket still acks subscribe unless a raw packet closed it; the process lives and delivers`,
    async () => {
      const counts: Record<string, number> = { steps: 0, acks: 0, refusedInstances: 0, closedByRawPacket: 0, closedOversize: 0, leftNamespace: 0, controlChecks: 0 };
      const property = fc.asyncProperty(caseArb, async ({ instance, steps }) => {
        await fuzz.startCase({ instance, steps });
        if (!control.socket.connected) await connectControl();
        const socket = connect(instance);
        try {
          const outcome = await connected(socket);
          if (!isAdmitted(instance)) {
            if (outcome === 'connect') throw new Error(`instance ${JSON.stringify(instance)} was admitted`);
            counts.refusedInstances++;
            return;
          }
          if (outcome !== 'connect') throw new Error(`instance ${JSON.stringify(instance)} was refused: ${outcome}`);
          let disconnectReason: string | undefined;
          socket.once('disconnect', (reason) => (disconnectReason = reason));
          let closeAllowed: 'raw' | 'oversize' | undefined;
          /**
           * A raw DISCONNECT packet (type 1) leaves the namespace without a word to the client:
           * Socket.IO then ignores the socket's events and drops acks still owed to it.
           */
          const leftNamespace = steps.some((s) => s.kind === 'packet' && s.text.startsWith('1'));
          const ackTimeoutMs = leftNamespace ? 300 : ACK_TIMEOUT_MS;
          const acks: Promise<void>[] = [];
          for (const step of steps) {
            counts.steps++;
            if (step.kind === 'emit') {
              if (isOversize(step)) closeAllowed ??= 'oversize';
              if (!step.ack) {
                socket.emit(step.event, ...step.args);
                continue;
              }
              acks.push(
                socket
                  .timeout(ackTimeoutMs)
                  .emitWithAck(step.event, ...step.args)
                  .then(
                    (answer: unknown) => {
                      counts.acks++;
                      checkAck(step.event, answer);
                    },
                    (err: Error) => {
                      // No answer: allowed only when the connection went away as allowed.
                      if (!((closeAllowed && disconnectReason) || leftNamespace)) throw new Error(`no ack for ${JSON.stringify(step.event)}: ${err.message}`);
                    },
                  ),
              );
            } else {
              closeAllowed ??= 'raw';
              socket.io.engine.write(step.kind === 'packet' ? step.text : Buffer.from(step.bytes));
            }
          }
          // The last word: the socket acks a known event, or it was closed as allowed; never neither.
          const last = socket
            .timeout(ackTimeoutMs)
            .emitWithAck('subscribe', ['PHID-FUZZ-OK'])
            .then(
              (answer: unknown) => answer as { ok?: boolean },
              () => undefined,
            );
          const settled = await Promise.allSettled(acks);
          const answer = await last;
          const failedAck = settled.find((r) => r.status === 'rejected');
          if (failedAck) throw (failedAck as PromiseRejectedResult).reason;
          if (answer?.ok === true && !disconnectReason) return;
          if (disconnectReason && closeAllowed) {
            counts[closeAllowed === 'raw' ? 'closedByRawPacket' : 'closedOversize']++;
            return;
          }
          if (leftNamespace) {
            counts.leftNamespace++;
            return;
          }
          throw new Error(`after the case: ack ${JSON.stringify(answer)}, disconnect ${disconnectReason ?? 'none'}`);
        } finally {
          socket.disconnect();
          socket.io.engine?.close();
          await fuzz.afterCase();
          if (fuzz.caseNumber % 100 === 0) {
            counts.controlChecks++;
            await checkControl();
          }
        }
      });

      const { details } = await runFuzz('socketio', fuzz, property, counts);
      expect({ failed: details.failed, message: failureMessage(details, fuzz) }).toEqual({ failed: false, message: 'no failure' });
      expect({ complete: isComplete(details), cases: details.numRuns }).toEqual({ complete: true, cases: details.numRuns });
      await checkControl();
      await fuzz.probe();
      // Positive controls: acks were checked, invalid instances refused, both kinds of close seen.
      expect(counts.acks).toBeGreaterThan(details.numRuns / 10);
      expect(counts.refusedInstances).toBeGreaterThan(0);
      expect(counts.closedByRawPacket).toBeGreaterThan(0);
      expect(counts.closedOversize).toBeGreaterThan(0);
      // Every fuzz socket is gone: the raw probe and the Socket.IO control remain.
      await fuzz.expectConnections(1, 1);
      await fuzz.assertNoInternalErrors();
      expect(fuzz.deaths).toEqual([]);
    },
    fuzzTimeoutMs(5),
  );
});
