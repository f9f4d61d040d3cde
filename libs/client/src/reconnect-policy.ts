/**
 * When to try again after a connection is lost. The default is Phorge's JX.Aphlict (through
 * JX.WebSocket): at once after a connection that had opened, else 2 s doubling up to 5
 * minutes; Tidings adds jitter so a node's clients do not all come back in the same instant.
 */
export interface ReconnectOptions {
  /** First delay after a failed attempt, ms. Default 2000. */
  initialDelayMs?: number;
  /** Largest delay, ms. Default 300000 (5 minutes). */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay taken off at random (0: none, 0.5: between half and all). Default 0.3. */
  jitter?: number;
  /** Reconnect at once (delay 0) when a connection that had opened is lost. Default true. */
  immediateAfterOpen?: boolean;
  /** Give up after this many failed attempts in a row (then status `closed`). Default Infinity. */
  maxAttempts?: number;
}

export const RECONNECT_DEFAULTS: Required<ReconnectOptions> = {
  initialDelayMs: 2_000,
  maxDelayMs: 300_000,
  factor: 2,
  jitter: 0.3,
  immediateAfterOpen: true,
  maxAttempts: Infinity,
};

export class ReconnectPolicy {
  private readonly options: Required<ReconnectOptions>;
  /** Failed attempts since the last connection that opened. */
  private failures = 0;

  constructor(options: ReconnectOptions = {}, private readonly random: () => number = Math.random) {
    this.options = { ...RECONNECT_DEFAULTS, ...options };
    const { initialDelayMs, maxDelayMs, factor, jitter } = this.options;
    if (initialDelayMs < 0 || maxDelayMs < initialDelayMs) throw new Error('reconnect: need 0 <= initialDelayMs <= maxDelayMs');
    if (factor < 1) throw new Error('reconnect: factor must be at least 1');
    if (jitter < 0 || jitter > 1) throw new Error('reconnect: jitter must be between 0 and 1');
  }

  /** A connection opened: the next loss reconnects at once. */
  opened(): void {
    this.failures = 0;
  }

  /**
   * The delay before the next attempt, or null to give up. `hadOpened`: the connection that
   * just ended had opened (rather than failed to connect).
   */
  next(hadOpened: boolean): number | null {
    const o = this.options;
    if (hadOpened && o.immediateAfterOpen) {
      this.failures = 0;
      return 0;
    }
    if (this.failures >= o.maxAttempts) return null;
    const base = Math.min(o.initialDelayMs * o.factor ** this.failures, o.maxDelayMs);
    this.failures++;
    return Math.round(base * (1 - o.jitter * this.random()));
  }
}
