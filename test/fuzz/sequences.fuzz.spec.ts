/**
 * Fuzz: random interleavings across a few raw sockets of one long-lived gateway process
 * (with Redis), while CONTROL clients on the same node must receive every message published
 * to them meanwhile, once each.
 *
 * A case is a list of actions on up to three fresh sockets of instance `seq` (frames:
 * subscribe, unsubscribe, replay, ping, garbage; abrupt TCP resets after a few ms; clean
 * closes; pauses of the client's reading; an oversize frame, which the server closes with
 * 1009), publishes (to the control PHID alone, to it and fuzz PHIDs, to fuzz PHIDs alone),
 * and slow-reader cuts: a socket of instance `big` (7.3 MB of history) stops reading, asks for
 * a replay with frames queued behind it, and gets cut off by limits.maxBufferedBytes while
 * messages to it and to that instance's control are published.
 *
 * Checked after every case: every publish answered 200; each control client (one per
 * instance) got exactly the messages published to its PHID (none lost, none twice); each
 * fuzz socket that the case did not reset or close answers a ping, unless the contract closed
 * it (1009 after an oversize frame, a slow-reader cut after it stopped reading); the process
 * lives and logged no error. Every 100 cases no contained defect was counted (/status/
 * errors.internal); every 250 cases and at the end, the probe proves it delivers.
 */
import type { Socket as TcpSocket } from 'node:net';
import WebSocket from 'ws';
import fc from 'fast-check';
import { connectSocket, messagesOf, notification, post, sleep, type PublishResponse, type TestSocket } from '@tidings/testing';
import { commandFrameTextArb, commandOf } from './arbitraries';
import { failureMessage, FUZZ_RUNS, FuzzGateway, fuzzTimeoutMs, isComplete, runFuzz } from './harness';

const MAX_FRAME_BYTES = 4_096;
/** Small, so that a reader that stops reading is cut off soon after the kernel's buffers fill. */
const MAX_BUFFERED_BYTES = 16_384;
/** The largest message must fit the bound (the gateway refuses a config where it does not). */
const MAX_BODY_BYTES = 15_000;
const SEQ = 'seq';
const BIG = 'big';
const CONTROL_PHID = 'PHID-CONTROL-seq';
const CONTROL_BIG_PHID = 'PHID-CONTROL-big';
const BIG_PHID = 'PHID-FUZZ-BIG';
const FUZZ_PHIDS = ['PHID-FUZZ-A', 'PHID-FUZZ-B', 'PHID-FUZZ-C', CONTROL_PHID];
const SOCKETS = 3;

type SeqFrame =
  | { command: 'subscribe' | 'unsubscribe'; phids: string[] }
  | { command: 'replay'; age?: number }
  | { command: 'ping' }
  | { command: 'garbage'; text: string };

type Action =
  | { op: 'frame'; sock: number; frame: SeqFrame }
  | { op: 'oversize'; sock: number }
  | { op: 'reset'; sock: number; afterMs: number }
  | { op: 'close'; sock: number }
  | { op: 'pause'; sock: number }
  | { op: 'resume'; sock: number }
  | { op: 'wait'; ms: number }
  | { op: 'publish'; to: 'control' | 'control+fuzz' | 'fuzz'; phids: string[] }
  | { op: 'slowCut'; queued: SeqFrame[]; publishes: number };

/** Padding of the live messages of a slow cut: one carries a replay stalled past half the bound over it. */
const LIVE_PAD_BYTES = 8_000;

const phidsArb = fc.subarray(FUZZ_PHIDS, { minLength: 1 });
const frameArb: fc.Arbitrary<SeqFrame> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ command: fc.constant('subscribe' as const), phids: phidsArb }) },
  { weight: 2, arbitrary: fc.record({ command: fc.constant('unsubscribe' as const), phids: phidsArb }) },
  {
    weight: 4,
    arbitrary: fc.record(
      { command: fc.constant('replay' as const), age: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3_600_000 })) },
      { requiredKeys: ['command'] },
    ),
  },
  { weight: 2, arbitrary: fc.constant({ command: 'ping' as const }) },
  { weight: 2, arbitrary: commandFrameTextArb.map((text) => ({ command: 'garbage' as const, text })) },
);
const sockArb = fc.integer({ min: 0, max: SOCKETS - 1 });
// Weights per 1,000 actions. A slow cut costs 100 ms or more (MBs of replay): about one case in 130.
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 400, arbitrary: fc.record({ op: fc.constant('frame' as const), sock: sockArb, frame: frameArb }) },
  { weight: 30, arbitrary: fc.record({ op: fc.constant('oversize' as const), sock: sockArb }) },
  { weight: 70, arbitrary: fc.record({ op: fc.constant('reset' as const), sock: sockArb, afterMs: fc.integer({ min: 0, max: 8 }) }) },
  { weight: 30, arbitrary: fc.record({ op: fc.constant('close' as const), sock: sockArb }) },
  { weight: 30, arbitrary: fc.record({ op: fc.constant('pause' as const), sock: sockArb }) },
  { weight: 30, arbitrary: fc.record({ op: fc.constant('resume' as const), sock: sockArb }) },
  { weight: 60, arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3 }) }) },
  {
    weight: 130,
    arbitrary: fc.record({
      op: fc.constant('publish' as const),
      to: fc.constantFrom<'control' | 'control+fuzz' | 'fuzz'>('control', 'control+fuzz', 'fuzz'),
      phids: phidsArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('slowCut' as const),
      queued: fc.array(frameArb, { maxLength: 3 }),
      publishes: fc.integer({ min: 1, max: 4 }),
    }),
  },
);
/** At most one slow cut per case. */
const caseArb = fc
  .array(actionArb, { minLength: 1, maxLength: 8 })
  .filter((actions) => actions.filter((a) => a.op === 'slowCut').length <= 1);

function frameText(frame: SeqFrame): string {
  switch (frame.command) {
    case 'subscribe':
    case 'unsubscribe':
      return JSON.stringify({ command: frame.command, data: frame.phids });
    case 'replay':
      return JSON.stringify(frame.age === undefined ? { command: 'replay' } : { command: 'replay', data: { age: frame.age } });
    case 'ping':
      return '{"command":"ping"}';
    case 'garbage':
      return frame.text;
  }
}

function tcpOf(ws: WebSocket): TcpSocket {
  return (ws as unknown as { _socket: TcpSocket })._socket;
}

/** One fuzz socket of a case and what the case did to it. */
interface CaseSocket {
  socket: TestSocket;
  /** The case reset or closed it: nothing is expected of it. */
  goneByUs: boolean;
  /** A frame over the bound was sent: the server closes it with 1009. */
  oversized: boolean;
  /** It stopped reading at some point: a slow-reader cut (1006 here) is allowed. */
  paused: boolean;
  /** It asked for a replay: if it then went away, the replay's tail may still run on the server. */
  replayed: boolean;
  /** Pings sent (pongs owed): the final check waits for all of them. */
  pings: number;
}

/**
 * The socket's answer to a last ping: 'pong' once every ping it was sent is answered (all its
 * frames were handled), or the close code if it closes first.
 */
async function lastWord(s: CaseSocket): Promise<'pong' | number> {
  s.pings++;
  s.socket.send('ping');
  const pongs = (r: Record<string, unknown>[]) => r.filter((f) => f.type === 'pong').length;
  return Promise.race([
    s.socket.waitFor((r) => pongs(r) >= s.pings, 5_000, `${s.pings} pongs`).then(() => 'pong' as const),
    s.socket.closed.then(({ code }) => code),
  ]);
}

/** A control client: one socket subscribed to a PHID of its own, and the ids published to it. */
interface Control {
  socket: TestSocket;
  phid: string;
  instance: string;
  /** uniqueIDs published to it (answered 200), in order. */
  expected: string[];
}

let fuzz: FuzzGateway;
let controls: Control[] = [];

async function connectControl(instance: string, phid: string): Promise<Control> {
  const socket = await connectSocket(`${fuzz.clientUrl}/~${instance}/`);
  socket.send('subscribe', [phid]);
  await socket.roundTrip();
  return { socket, phid, instance, expected: [] };
}

async function slowReaderCloses(): Promise<number> {
  return (await fuzz.status(BIG))['clients.slowReaderCloses'] as number;
}

async function fillHistory(instance: string, count: number, phids: string[], padBytes: (n: number) => number): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, k) => publishTo(instance, [phids[(i + k) % phids.length]], { n: i + k, pad: 'x'.repeat(padBytes(i + k)) })),
    );
  }
}

/** Live messages published to `big` since its history was last filled. */
let bigLiveSinceFill = 0;

/**
 * `big`: 700 messages of 7 or 14 kB (7.3 MB), more than loopback TCP buffers for a reader
 * that stops. Past the kernel's share, a 14 kB entry on top of what is still unsent passes
 * the 16 kB bound (the replay is cut), or the replay stops past half the bound to wait for a
 * drain and the first live message of the slow cut carries it over (cut in a fan-out with
 * the control). Filled again before the slow cuts' live messages push these out of the
 * 2,000 kept.
 */
async function fillBig(): Promise<void> {
  await fillHistory(BIG, 700, [BIG_PHID], (n) => (n % 2 ? 14_000 : 7_000));
  bigLiveSinceFill = 0;
}

/** Publishes to an instance; the answer must be 200 (no 5xx: Redis is up). */
async function publishTo(instance: string, phids: string[], extra: Record<string, unknown> = {}): Promise<{ id: string; res: PublishResponse }> {
  const message = notification(phids, extra);
  const res = await post(fuzz.adminUrl, message, { instance });
  if (res.status !== 200) throw new Error(`publish to ${instance} ${JSON.stringify(phids)} answered ${res.status}: ${res.text.slice(0, 200)}`);
  return { id: message.uniqueID as string, res };
}

/** The control got exactly what was published to it: each id once, none missing, none extra. */
async function checkControl(control: Control): Promise<void> {
  await control.socket.roundTrip(5_000);
  const got = messagesOf(control.socket.received).map((m) => m.uniqueID as string);
  const want = control.expected;
  if (got.length !== want.length || new Set(got).size !== got.length || !want.every((id) => got.includes(id))) {
    const missing = want.filter((id) => !got.includes(id));
    const extra = got.filter((id) => !want.includes(id));
    const twice = got.filter((id, i) => got.indexOf(id) !== i);
    throw new Error(`control ${control.instance}/${control.phid}: missing ${JSON.stringify(missing)}, unexpected ${JSON.stringify(extra)}, twice ${JSON.stringify(twice)}`);
  }
  // Checked: start the next case from empty lists.
  control.socket.received.length = 0;
  control.expected = [];
}

beforeAll(async () => {
  fuzz = await FuzzGateway.start({
    config: {
      limits: { maxFrameBytes: MAX_FRAME_BYTES, maxSubscriptionsPerSocket: 64, maxBufferedBytes: MAX_BUFFERED_BYTES, maxBodyBytes: MAX_BODY_BYTES },
      history: { maxMessages: 2_000, maxAgeMs: 3_600_000 },
    },
  });
  // `seq`: 600 small messages, so that a replay takes a few ms and resets land inside it.
  await fillHistory(SEQ, 600, FUZZ_PHIDS.slice(0, 3), () => 300);
  await fillBig();
  controls = [await connectControl(SEQ, CONTROL_PHID), await connectControl(BIG, CONTROL_BIG_PHID)];
}, 120_000);

afterAll(async () => {
  for (const c of controls) await c.socket.close();
  expect(await fuzz?.close()).toBe(0);
});

describe('fuzz - sequences across sockets with resets and server-side closes', () => {
  it(
    `${FUZZ_RUNS} cases: control clients get every message published to them once; surviving sockets answer; the process lives and delivers`,
    async () => {
      const counts: Record<string, number> = {
        actions: 0,
        resets: 0,
        oversizeCloses: 0,
        pausedCuts: 0,
        slowCutRounds: 0,
        slowCuts: 0,
        controlMessages: 0,
        replaysSent: 0,
      };
      const property = fc.asyncProperty(caseArb, async (actions) => {
        await fuzz.startCase(actions);
        // A restarted process has lost the controls' sockets.
        if (controls.some((c) => c.socket.ws.readyState !== WebSocket.OPEN)) {
          controls = [await connectControl(SEQ, CONTROL_PHID), await connectControl(BIG, CONTROL_BIG_PHID)];
        }
        // After a failed case (fast-check goes on to shrink it) the controls start clean: what
        // that case published was delivered before its 200s, so a round trip flushes it.
        for (const c of controls) {
          if (!c.expected.length && !c.socket.received.length) continue;
          await c.socket.roundTrip();
          c.socket.received.length = 0;
          c.expected = [];
        }
        const [controlSeq, controlBig] = controls;
        const sockets = new Map<number, CaseSocket>();
        const socketFor = async (i: number): Promise<CaseSocket> => {
          let s = sockets.get(i);
          if (!s) {
            s = { socket: await connectSocket(`${fuzz.clientUrl}/~${SEQ}/`), goneByUs: false, oversized: false, paused: false, replayed: false, pings: 0 };
            sockets.set(i, s);
          }
          return s;
        };
        const publishes: Promise<unknown>[] = [];
        const timers: NodeJS.Timeout[] = [];
        const extraSockets: WebSocket[] = [];
        try {
          for (const action of actions) {
            counts.actions++;
            switch (action.op) {
              case 'frame': {
                const s = await socketFor(action.sock);
                const text = frameText(action.frame);
                if (Buffer.byteLength(text) > MAX_FRAME_BYTES) s.oversized = true;
                if (commandOf(text) === 'ping') s.pings++;
                if (commandOf(text) === 'replay') {
                  counts.replaysSent++;
                  s.replayed = true;
                }
                s.socket.ws.send(text);
                break;
              }
              case 'oversize': {
                const s = await socketFor(action.sock);
                s.oversized = true;
                s.socket.ws.send('x'.repeat(MAX_FRAME_BYTES + 1));
                break;
              }
              case 'reset': {
                const s = await socketFor(action.sock);
                s.goneByUs = true;
                counts.resets++;
                timers.push(setTimeout(() => tcpOf(s.socket.ws)?.resetAndDestroy(), action.afterMs));
                break;
              }
              case 'close': {
                const s = await socketFor(action.sock);
                s.goneByUs = true;
                s.socket.ws.close();
                break;
              }
              case 'pause': {
                const s = await socketFor(action.sock);
                s.paused = true;
                tcpOf(s.socket.ws)?.pause();
                break;
              }
              case 'resume': {
                const s = await socketFor(action.sock);
                tcpOf(s.socket.ws)?.resume();
                break;
              }
              case 'wait':
                await sleep(action.ms);
                break;
              case 'publish': {
                const phids = action.to === 'control' ? [CONTROL_PHID] : action.to === 'fuzz' ? action.phids : [CONTROL_PHID, ...action.phids];
                const toControl = phids.includes(CONTROL_PHID);
                publishes.push(
                  publishTo(SEQ, phids).then(({ id }) => {
                    if (toControl) controlSeq.expected.push(id);
                  }),
                );
                break;
              }
              case 'slowCut': {
                counts.slowCutRounds++;
                if (bigLiveSinceFill > 1_000) await fillBig();
                const ws = new WebSocket(`${fuzz.clientUrl}/~${BIG}/`);
                extraSockets.push(ws);
                ws.on('error', () => undefined);
                await new Promise<void>((resolve, reject) => {
                  ws.once('open', () => resolve());
                  ws.once('error', reject);
                });
                const cutsBefore = await slowReaderCloses();
                ws.send(JSON.stringify({ command: 'subscribe', data: [BIG_PHID] }));
                tcpOf(ws).pause();
                ws.send('{"command":"replay"}');
                for (const frame of action.queued) ws.send(frameText(frame));
                // Live messages to the stalled reader and the control together: the fan-out
                // that cuts the reader off must still reach the control. `publishes` of them at
                // once; then one every 30 ms until the server has cut the reader off (its own
                // next entry passes the bound, or a live message does once the replay waits for
                // a drain), for at most 2 s: after the cut its replay is over, and whatever it
                // does wrong happens within this case. Not cut by then: the case resets it.
                const publishLive = () => {
                  bigLiveSinceFill++;
                  const pad = 'x'.repeat(LIVE_PAD_BYTES);
                  publishes.push(publishTo(BIG, [BIG_PHID, CONTROL_BIG_PHID], { pad }).then(({ id }) => void controlBig.expected.push(id)));
                };
                for (let i = 0; i < action.publishes; i++) publishLive();
                const deadline = Date.now() + 2_000;
                let cut = false;
                while (!cut && Date.now() < deadline) {
                  await sleep(30);
                  cut = (await slowReaderCloses()) !== cutsBefore;
                  if (!cut) publishLive();
                }
                if (cut) counts.slowCuts++;
                break;
              }
            }
          }
          await Promise.all(publishes);
          // Every socket the case did not take away answers a ping, or was closed as the contract says.
          for (const [i, s] of sockets) {
            if (s.goneByUs) continue;
            tcpOf(s.socket.ws)?.resume();
            const outcome = await lastWord(s);
            if (outcome === 'pong') {
              if (s.oversized) throw new Error(`socket ${i} sent a frame over ${MAX_FRAME_BYTES} bytes and was not closed`);
              continue;
            }
            if (s.oversized && outcome === 1009) {
              counts.oversizeCloses++;
              continue;
            }
            if (s.paused && outcome === 1006) {
              counts.pausedCuts++;
              continue;
            }
            throw new Error(`socket ${i} closed with ${outcome}${s.paused ? ' (it had paused)' : ''}${s.oversized ? ' (oversize sent)' : ''}`);
          }
          for (const control of controls) {
            counts.controlMessages += control.expected.length;
            await checkControl(control);
          }
        } finally {
          for (const t of timers) clearTimeout(t);
          for (const s of sockets.values()) s.socket.ws.terminate();
          for (const ws of extraSockets) ws.terminate();
          await Promise.allSettled(publishes);
        }
        // Frames queued behind replays that the case's closes cut short finish on the server
        // now: let them go wrong within this case, so a crash is blamed on its cause (a later
        // one is still recorded, with the cases before it, in the deaths of the report).
        if ([...sockets.values()].some((s) => s.replayed && (s.goneByUs || s.oversized || s.paused))) await sleep(5);
        await fuzz.afterCase(250);
      });

      const { details } = await runFuzz('sequences', fuzz, property, counts);
      expect({ failed: details.failed, message: failureMessage(details, fuzz) }).toEqual({ failed: false, message: 'no failure' });
      expect({ complete: isComplete(details), cases: details.numRuns }).toEqual({ complete: true, cases: details.numRuns });
      await fuzz.probe();
      const status = await fuzz.status(BIG);
      // Positive controls: the run did cut slow readers off, close oversize senders and check
      // control messages, so the invariants above were tested, not vacuous.
      expect(status['clients.slowReaderCloses']).toBeGreaterThan(0);
      expect(counts.slowCuts).toBeGreaterThan(counts.slowCutRounds / 2);
      expect(counts.oversizeCloses).toBeGreaterThan(0);
      expect(counts.controlMessages).toBeGreaterThan(details.numRuns / 10);
      // Every fuzz socket has left the hub: the probe and the two controls remain.
      await fuzz.expectConnections(3, 0);
      await fuzz.assertNoInternalErrors();
      expect(fuzz.deaths).toEqual([]);
    },
    fuzzTimeoutMs(20),
  );
});
