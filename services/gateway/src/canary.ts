/**
 * The bus canary: on a timer, sends a canary through the bus (the same channel that
 * carries messages) and waits for it to come back to this node. Readiness asks it whether
 * one came back recently, because a connected bus can still stop delivering (Centrifugo and
 * the Socket.IO Redis adapter have both shipped such bugs while their health stayed green).
 */
import type { Bus } from '@tidings/bus';
import type { Logger } from '@tidings/protocol';

export interface BusCanaryOptions {
  bus: Bus;
  logger: Logger;
  /** Time between two canaries (the next starts after the previous one ended). Config: health.canaryIntervalMs. */
  intervalMs: number;
  /** A canary older than this no longer proves delivery. Config: health.canaryMaxAgeMs. */
  maxAgeMs: number;
  /** How long one canary may take; default: the smaller of maxAgeMs and 5 s. */
  timeoutMs?: number;
  /** Called with each successful round trip, in ms (the round-trip histogram). */
  onRoundTrip?: (ms: number) => void;
  now?: () => number;
}

export interface CanaryState {
  /** When a canary last came back (epoch ms), or null if none has yet. */
  lastOkAt: number | null;
  /** Its round trip, ms. */
  lastRoundTripMs: number | null;
  /** The last failure, cleared by the next success. */
  lastError: string | null;
  /** Canaries sent and failed since start. */
  sent: number;
  failed: number;
  /** Reconnects asked of a bus that looked connected but did not deliver. */
  repairs: number;
}

export class BusCanary {
  private readonly options: Required<Omit<BusCanaryOptions, 'onRoundTrip'>> & Pick<BusCanaryOptions, 'onRoundTrip'>;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private closed = false;
  private inFlight: Promise<void> | null = null;
  private readonly state: CanaryState = { lastOkAt: null, lastRoundTripMs: null, lastError: null, sent: 0, failed: 0, repairs: 0 };
  private startedAt = 0;
  private lastRepairAt: number | null = null;
  private readonly onUp = () => this.runSoon(0);

  constructor(options: BusCanaryOptions) {
    // Named by their config keys: these come straight from health.* in the config.
    if (options.intervalMs <= 0 || options.maxAgeMs <= 0) {
      throw new Error('health.canaryIntervalMs and health.canaryMaxAgeMs must be positive');
    }
    if (options.maxAgeMs < options.intervalMs) {
      throw new Error(
        `health.canaryMaxAgeMs (${options.maxAgeMs}) must be at least health.canaryIntervalMs (${options.intervalMs}), or a healthy node would flap`,
      );
    }
    this.options = {
      timeoutMs: Math.min(options.maxAgeMs, 5_000),
      now: Date.now,
      ...options,
    };
  }

  /** Sends the first canary at once, then one every intervalMs. */
  start(): void {
    if (this.running || this.closed) return;
    this.running = true;
    this.startedAt = this.options.now();
    // A bus that comes back is checked at once rather than at the next tick.
    this.options.bus.on('up', this.onUp);
    this.runSoon(0);
  }

  /** Stops the timer and waits for a canary in flight. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.running = false;
    this.options.bus.off('up', this.onUp);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
  }

  snapshot(): CanaryState {
    return { ...this.state };
  }

  /** Whether a canary came back within maxAgeMs; with the reason when not. */
  freshness(): { ok: true } | { ok: false; reason: string } {
    const { lastOkAt, lastError } = this.state;
    const { maxAgeMs, now } = this.options;
    if (lastOkAt === null) {
      return { ok: false, reason: `no canary has come back through the bus yet${lastError ? ` (${lastError})` : ''}` };
    }
    const age = now() - lastOkAt;
    if (age > maxAgeMs) {
      return {
        ok: false,
        reason: `the last canary came back ${age} ms ago (limit ${maxAgeMs} ms)${lastError ? `; since then: ${lastError}` : ''}`,
      };
    }
    return { ok: true };
  }

  private runSoon(delayMs: number): void {
    if (!this.running || this.inFlight) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.inFlight = this.runOnce().finally(() => {
        this.inFlight = null;
        this.runSoon(this.options.intervalMs);
      });
    }, delayMs);
    // The canary alone must not keep a process alive.
    this.timer.unref();
  }

  private async runOnce(): Promise<void> {
    const { bus, timeoutMs, logger, now } = this.options;
    this.state.sent++;
    try {
      const ms = await bus.roundTrip(timeoutMs);
      const wasFailing = this.state.lastError !== null;
      this.state.lastOkAt = now();
      this.state.lastRoundTripMs = ms;
      this.state.lastError = null;
      this.options.onRoundTrip?.(ms);
      if (wasFailing) logger.info({ ms }, 'bus canary came back: delivery works again');
    } catch (err) {
      this.state.failed++;
      const message = (err as Error).message;
      if (this.state.lastError === null) logger.warn({ err: message }, 'bus canary failed: the bus is not delivering');
      this.state.lastError = message;
      this.repairIfSilent();
    }
  }

  /**
   * A bus that says it is connected while no canary came back within maxAgeMs has failed
   * silently (a lost subscription, a peer that stopped answering): reconnect it. A bus that
   * knows it is down reconnects by itself; one late canary is not yet a failure.
   */
  private repairIfSilent(): void {
    const { bus, maxAgeMs, now, logger } = this.options;
    if (!this.running || !bus.isConnected) return;
    const fresh = this.freshness();
    if (fresh.ok) return;
    const t = now();
    if (this.lastRepairAt !== null && t - this.lastRepairAt < maxAgeMs) return;
    this.lastRepairAt = t;
    this.state.repairs++;
    const silentSince = this.state.lastOkAt ?? this.startedAt;
    logger.warn({ silentSince, reason: fresh.reason }, 'bus canary: connected but not delivering; reconnecting the bus and backfilling');
    bus.reconnect(fresh.reason, silentSince);
  }
}
