/**
 * The fuzz specs' harness: one long-lived real gateway process per target, on a Redis of
 * its own (shared history and bus), that a case may not crash. When a case does kill it,
 * the harness records the death and spawns a fresh process on the same Redis before the
 * next case, so fast-check can shrink a crash against a live process instead of reporting
 * every later case as failing.
 *
 * Figures: each target writes reports/fuzz/<target>.json (cases, time, failures, seed,
 * counterexample), which `npm run fuzz` (tools/fuzz.mjs) prints.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import fc from 'fast-check';
import {
  connectSocket,
  getStatus,
  messagesOf,
  notification,
  post,
  sleep,
  spawnGateway,
  startRedis,
  type GatewayProcess,
  type RedisHandle,
  type TestSocket,
} from '@tidings/testing';

function positiveInt(text: string | undefined, fallback: number): number {
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** Cases per target: 10,000 in the suite; `npm run fuzz -- --cases N` sets TIDINGS_FUZZ_RUNS. */
export const FUZZ_RUNS = positiveInt(process.env.TIDINGS_FUZZ_RUNS, 10_000);

/** The seed: given (to replay a run), or drawn here so that every report can name it. */
export const FUZZ_SEED = process.env.TIDINGS_FUZZ_SEED
  ? Number(process.env.TIDINGS_FUZZ_SEED) | 0
  : (Math.random() * 0x7fffffff) | 0;

/**
 * A bound on a long run's time (`npm run fuzz -- --time-limit-s`): fast-check stops there,
 * and the report says how many cases ran. The suite has none: it runs every case.
 */
export const FUZZ_TIME_LIMIT_MS = positiveInt(process.env.TIDINGS_FUZZ_TIME_LIMIT_MS, 0) || undefined;

/**
 * Jest's timeout for one target: generous per case (a loaded 2-core box), plus room for
 * fast-check to shrink a failure against the live process (respawns included).
 */
export function fuzzTimeoutMs(perCaseMs: number): number {
  return (FUZZ_TIME_LIMIT_MS ?? FUZZ_RUNS * perCaseMs * 4) + 180_000;
}

/** fast-check's parameters for a target. */
export function fuzzParameters<T>(): fc.Parameters<T> {
  return {
    numRuns: FUZZ_RUNS,
    seed: FUZZ_SEED,
    interruptAfterTimeLimit: FUZZ_TIME_LIMIT_MS,
    markInterruptAsFailure: false,
  };
}

/** The run did every case, or stopped at the time limit of a long run (and then ran some). */
export function isComplete<T>(details: fc.RunDetails<T>): boolean {
  return details.numRuns === FUZZ_RUNS || (FUZZ_TIME_LIMIT_MS !== undefined && details.interrupted && details.numRuns > 0);
}

export interface GatewayDeath {
  /** The case (1-based) during or after which it died. */
  afterCase: number;
  /** Exit code; null when it had to be killed (its client port had stopped serving). */
  code: number | null;
  /** The fatal log record ("uncaught exception"), when it wrote one. */
  fatal?: Record<string, unknown>;
  /** The last cases run before it was found dead (fast-check's stringify, cut), newest last. */
  recentCases: string[];
}

export interface FuzzGatewayOptions {
  /** Gateway config beside `servers` and `redis` (limits, history...). */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  /**
   * A connection token for the probe socket (sent as `?token=`), when the gateway requires
   * them; it must allow the probe's PHIDs, `PHID-PROBE-*`.
   */
  probeToken?: string;
}

/** Preload that lets SIGUSR2 run gc() in a gateway (gc-on-signal.cjs). */
const GC_PRELOAD = resolve(__dirname, 'gc-on-signal.cjs');

/** Log records at error level or above (pino: error 50, fatal 60). */
const ERROR_LEVEL = 50;

/**
 * A gateway process under fuzzing, with a probe socket subscribed to a PHID of its own:
 * probe() publishes to it and waits for the frame, so "still serves" means the admin port
 * accepted, Redis stored, and the client port delivered.
 */
export class FuzzGateway {
  readonly deaths: GatewayDeath[] = [];
  /** Every error-or-worse log record seen, with the case it came after. */
  readonly errorLogs: { afterCase: number; record: Record<string, unknown> }[] = [];
  readonly probePhid = `PHID-PROBE-${Math.random().toString(36).slice(2, 10)}`;
  /** Cases run so far (counted by startCase; dates deaths and error logs). */
  caseNumber = 0;
  /** The last few cases, to show with a death: a crash may surface in the case after its cause. */
  private readonly recentCases: string[] = [];
  private logCursor = 0;
  private probeSocket?: TestSocket;
  private probes = 0;
  private constructor(
    public gateway: GatewayProcess,
    readonly redis: RedisHandle,
    private readonly spawnOptions: Parameters<typeof spawnGateway>[0],
    private readonly probeToken?: string,
  ) {}

  static async start(options: FuzzGatewayOptions = {}): Promise<FuzzGateway> {
    const redis = await startRedis();
    // A prefix of our own: REDIS_URL may point at a Redis other specs share.
    const keyPrefix = `tidings-fuzz-${process.pid}-${Math.random().toString(36).slice(2, 8)}:`;
    const spawnOptions = {
      config: { ...options.config, redis: { url: redis.url, keyPrefix } },
      // SIGUSR2 collects garbage before the live heap is read (liveHeapMb); the gateway never does itself.
      env: { NODE_OPTIONS: `--expose-gc --require ${GC_PRELOAD}`, ...options.env },
    };
    const fuzz = new FuzzGateway(await spawnGateway(spawnOptions), redis, spawnOptions, options.probeToken);
    await fuzz.connectProbe();
    return fuzz;
  }

  get adminUrl(): string {
    return this.gateway.adminUrl;
  }

  get clientUrl(): string {
    return this.gateway.clientUrl;
  }

  get clientPort(): number {
    return this.gateway.clientPort;
  }

  get isAlive(): boolean {
    const { child } = this.gateway;
    return child.exitCode === null && child.signalCode === null;
  }

  /**
   * Whether the process still serves its client port: alive, and the probe socket still open.
   * After a crash the probe socket's close can be seen before the process's exit is.
   */
  private get isServing(): boolean {
    return this.isAlive && this.probeSocket?.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Throws when the process died or logged an error since the last check; the spec's
   * property calls it after every case, so fast-check sees the case as failing.
   */
  async assertHealthy(): Promise<void> {
    if (!this.isServing) {
      // Give the pipe a moment to deliver the fatal record written just before exit.
      await Promise.race([this.gateway.exited, sleep(200)]);
      const state = this.isAlive ? 'alive but its probe socket was closed' : `exited with code ${this.gateway.child.exitCode}`;
      throw new Error(`gateway process ${state}: ${JSON.stringify(this.fatalRecord() ?? null)}`);
    }
    const logs = this.gateway.logs;
    const fresh: Record<string, unknown>[] = [];
    for (; this.logCursor < logs.length; this.logCursor++) {
      const record = logs[this.logCursor];
      if (typeof record.level === 'number' && record.level >= ERROR_LEVEL) fresh.push(record);
    }
    for (const record of fresh) this.errorLogs.push({ afterCase: this.caseNumber, record });
    if (fresh.length) throw new Error(`gateway logged ${fresh.length} error(s): ${JSON.stringify(fresh).slice(0, 1_000)}`);
  }

  /**
   * After each case: the process serves and logged no error (assertHealthy); every 100 cases
   * no contained defect was counted (/status/ errors.internal: handlers that threw and were
   * cut off, some logged below error level); every `probeEvery` cases the probe delivers.
   */
  async afterCase(probeEvery = 500): Promise<void> {
    await this.assertHealthy();
    if (this.caseNumber % 100 === 0) await this.assertNoInternalErrors();
    if (this.caseNumber % probeEvery === 0) await this.probe();
  }

  async assertNoInternalErrors(): Promise<void> {
    const counted = (await this.status())['errors.internal'] as Record<string, number> | undefined;
    if (counted && Object.keys(counted).length) throw new Error(`the gateway counted contained defects: ${JSON.stringify(counted)}`);
  }

  /**
   * Before each case: a dead process is recorded (with the cases that ran before) and
   * replaced (same config, same Redis); then the case is counted and remembered.
   */
  async startCase(input: unknown): Promise<void> {
    await this.ensureRunning();
    this.caseNumber++;
    this.recentCases.push(fc.stringify(input).slice(0, 2_000));
    if (this.recentCases.length > 3) this.recentCases.shift();
  }

  private async ensureRunning(): Promise<void> {
    if (this.isServing) return;
    if (this.isAlive) {
      // The probe socket closed: wait for the exit that follows a crash (or end a hung process).
      const exited = await Promise.race([this.gateway.exited.then(() => true), sleep(3_000).then(() => false)]);
      if (!exited) await this.gateway.kill();
    }
    this.deaths.push({
      afterCase: this.caseNumber,
      code: this.gateway.child.exitCode,
      fatal: this.fatalRecord(),
      recentCases: [...this.recentCases],
    });
    this.probeSocket = undefined;
    this.gateway = await spawnGateway(this.spawnOptions);
    this.logCursor = 0;
    await this.connectProbe();
  }

  /** Publishes to the probe PHID and waits until the probe socket has it: the process serves. */
  async probe(): Promise<void> {
    const socket = this.probeSocket ?? (await this.connectProbe());
    const n = ++this.probes;
    const res = await post(this.adminUrl, notification([this.probePhid], { probe: n }));
    if (res.status !== 200) throw new Error(`probe publish answered ${res.status}: ${res.text.slice(0, 200)}`);
    await socket.waitFor((r) => messagesOf(r).some((m) => m.probe === n), 5_000, `probe ${n}`);
    // Keep the probe's own list short over a long run.
    if (socket.received.length > 100) socket.received.splice(0, socket.received.length - 10);
  }

  /** /status/ of an instance (the probe is on `default`). */
  status(instance?: string): Promise<Record<string, unknown>> {
    return getStatus(this.adminUrl, instance);
  }

  /**
   * Waits until this node counts exactly `raw` raw and `socketio` Socket.IO connections (the
   * probe included in `raw`): what the fuzz sockets left behind once they are all closed.
   */
  async expectConnections(raw: number, socketio: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen: unknown;
    for (;;) {
      const status = await this.status();
      const io = status.socketio as { active?: number } | undefined;
      seen = { raw: status['clients.node.active'], socketio: io?.active };
      if (status['clients.node.active'] === raw && (io?.active ?? 0) === socketio) return;
      if (Date.now() > deadline) throw new Error(`connections left open: ${JSON.stringify(seen)}, expected raw ${raw}, socketio ${socketio}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Resident memory of the process (kB), for the report's leak figures. */
  rssKb(): number | null {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.gateway.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  }

  /**
   * The process's live V8 heap (MB, from /metrics: prom-client's default metrics) after two
   * full collections, for the report's leak figures: what a run left alive. Not asserted.
   */
  async liveHeapMb(): Promise<number | null> {
    this.gateway.child.kill('SIGUSR2');
    await sleep(300);
    const bytes = await this.heapUsedBytes();
    return bytes === null ? null : Math.round(bytes / 1e5) / 10;
  }

  private async heapUsedBytes(): Promise<number | null> {
    try {
      const text = await (await fetch(`${this.adminUrl}/metrics`)).text();
      const m = /^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  }

  /** Stops with SIGTERM and returns the exit code (0 for a clean drain), then stops Redis. */
  async close(): Promise<number | null> {
    await this.probeSocket?.close();
    const code = this.isAlive ? await this.gateway.stop('SIGTERM') : this.gateway.child.exitCode;
    await this.redis.stop();
    return code;
  }

  private fatalRecord(): Record<string, unknown> | undefined {
    return this.gateway.logs.find((l) => typeof l.level === 'number' && l.level >= 60);
  }

  private async connectProbe(): Promise<TestSocket> {
    const socket = await connectSocket(this.probeToken ? `${this.clientUrl}/?token=${this.probeToken}` : this.clientUrl);
    socket.send('subscribe', [this.probePhid]);
    await socket.roundTrip();
    this.probeSocket = socket;
    return socket;
  }
}

export interface FuzzReport {
  target: string;
  cases: number;
  ms: number;
  failed: boolean;
  seed: number;
  /** fast-check's replay path of the failing case, with the seed. */
  path?: string;
  numShrinks?: number;
  counterexample?: string;
  error?: string;
  interrupted: boolean;
  deaths: GatewayDeath[];
  errorLogs: number;
  /** The first error-or-worse log records, with the case each came after. */
  firstErrorLogs: { afterCase: number; record: Record<string, unknown> }[];
  rssKb: { start: number | null; end: number | null };
  /** Live heap after full collections, before and after the run. */
  liveHeapMb: { start: number | null; end: number | null };
  /** Target-specific counts (frames by kind, closes seen, publishes checked...). */
  counts: Record<string, number>;
}

export const REPORT_DIR = resolve(__dirname, '../../reports/fuzz');

/** Writes the target's report and prints its figures on one line. */
export function writeFuzzReport(report: FuzzReport): void {
  mkdirSync(REPORT_DIR, { recursive: true });
  writeFileSync(join(REPORT_DIR, `${report.target}.json`), JSON.stringify(report, null, 2));
  const line =
    `fuzz ${report.target}: ${report.cases} cases in ${(report.ms / 1000).toFixed(1)} s, ` +
    `${report.failed ? 'FAILED' : 'no failure'}, seed ${report.seed}` +
    (report.path ? `, path ${report.path}` : '') +
    `, gateway deaths ${report.deaths.length}, error logs ${report.errorLogs}` +
    `, rss ${report.rssKb.start} -> ${report.rssKb.end} kB, live heap ${report.liveHeapMb.start} -> ${report.liveHeapMb.end} MB`;
  process.stdout.write(`${line}\n`);
}

/**
 * Runs a property for a target and writes its report. Returns fast-check's details; the
 * spec asserts on them (a failure's message is fast-check's own report, counterexample
 * and seed included).
 */
export async function runFuzz<T>(
  target: string,
  fuzz: FuzzGateway,
  property: fc.IAsyncProperty<T>,
  counts: Record<string, number>,
): Promise<{ details: fc.RunDetails<T>; report: FuzzReport }> {
  const rssStart = fuzz.rssKb();
  const heapStart = await fuzz.liveHeapMb();
  const started = Date.now();
  const details = await fc.check(property, fuzzParameters<T>());
  const report: FuzzReport = {
    target,
    cases: details.numRuns,
    ms: Date.now() - started,
    failed: details.failed,
    seed: details.seed,
    path: details.failed ? details.counterexamplePath ?? undefined : undefined,
    numShrinks: details.failed ? details.numShrinks : undefined,
    counterexample: details.failed ? fc.stringify(details.counterexample).slice(0, 4_000) : undefined,
    error: details.failed ? String(details.errorInstance).slice(0, 4_000) : undefined,
    interrupted: details.interrupted,
    deaths: fuzz.deaths,
    errorLogs: fuzz.errorLogs.length,
    firstErrorLogs: fuzz.errorLogs.slice(0, 5),
    rssKb: { start: rssStart, end: fuzz.rssKb() },
    liveHeapMb: { start: heapStart, end: await fuzz.liveHeapMb() },
    counts,
  };
  writeFuzzReport(report);
  return { details, report };
}

/**
 * fast-check's report of a failed run (seed, path, shrunk counterexample), cut for the
 * assertion message, with the process deaths: a crash can surface in the case after the one
 * that caused it, so each death lists the cases that ran just before it.
 */
export function failureMessage<T>(details: fc.RunDetails<T>, fuzz?: FuzzGateway): string {
  let message = fc.defaultReportMessage(details) ?? 'no failure';
  if (message.length > 6_000) message = `${message.slice(0, 6_000)}... (cut; reports/fuzz has the start of the counterexample)`;
  if (details.failed && fuzz?.deaths.length) {
    message += `\nGateway deaths (${fuzz.deaths.length}), the first: ${JSON.stringify(fuzz.deaths[0], null, 1).slice(0, 4_000)}`;
  }
  return message;
}
