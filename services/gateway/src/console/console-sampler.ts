/**
 * What the console charts, sampled on a timer instead of on the message path: every
 * `stepMs` (5 s) it reads the node's publish and delivery counters and the event-loop
 * delay histogram, and keeps 15 minutes of rates in memory. The cost is one timer tick per
 * step and the histogram's own timer (perf_hooks.monitorEventLoopDelay, 20 ms resolution).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ConsoleSeries } from '@tidings/protocol';
import type { Counters } from '../counters';
import { RateSeries } from './rate-series';

export interface ConsoleSamplerOptions {
  counters: Pick<Counters, 'messagesIn' | 'messagesOut'>;
  /** Time between samples, ms. Default 5000. */
  stepMs?: number;
  /** Length of the window kept, ms. Default 15 minutes. */
  windowMs?: number;
  /** Resolution of the event-loop delay histogram, ms. Default 20. */
  loopResolutionMs?: number;
  now?: () => number;
}

export interface EventLoopDelay {
  meanMs: number;
  p99Ms: number;
  maxMs: number;
}

const round2 = (ms: number) => Math.round(ms * 100) / 100;

export class ConsoleSampler {
  readonly stepMs: number;
  private readonly publishes: RateSeries;
  private readonly deliveries: RateSeries;
  private readonly now: () => number;
  private readonly histogram: IntervalHistogram;
  private readonly loopResolutionMs: number;
  private timer?: NodeJS.Timeout;
  private last: { at: number; publishes: number; deliveries: number };
  private loop: EventLoopDelay = { meanMs: 0, p99Ms: 0, maxMs: 0 };

  constructor(private readonly options: ConsoleSamplerOptions) {
    this.stepMs = options.stepMs ?? 5_000;
    const points = Math.max(1, Math.round((options.windowMs ?? 15 * 60_000) / this.stepMs));
    this.publishes = new RateSeries({ stepMs: this.stepMs, points });
    this.deliveries = new RateSeries({ stepMs: this.stepMs, points });
    this.now = options.now ?? Date.now;
    this.loopResolutionMs = options.loopResolutionMs ?? 20;
    this.histogram = monitorEventLoopDelay({ resolution: this.loopResolutionMs });
    this.last = { at: this.now(), publishes: options.counters.messagesIn, deliveries: options.counters.messagesOut };
  }

  start(): void {
    if (this.timer) return;
    this.last = { at: this.now(), publishes: this.options.counters.messagesIn, deliveries: this.options.counters.messagesOut };
    this.histogram.enable();
    this.timer = setInterval(() => this.sample(), this.stepMs);
    this.timer.unref();
  }

  /** Takes one sample now (the timer calls it; tests may too). */
  sample(): void {
    const at = this.now();
    const { messagesIn, messagesOut } = this.options.counters;
    const elapsed = at - this.last.at;
    this.publishes.add(messagesIn - this.last.publishes, elapsed, at);
    this.deliveries.add(messagesOut - this.last.deliveries, elapsed, at);
    this.last = { at, publishes: messagesIn, deliveries: messagesOut };
    // The histogram holds nanoseconds between its timer's ticks, the resolution included:
    // the delay is what exceeds it. NaN (no sample yet) reads as 0.
    const ms = (ns: number) => (Number.isFinite(ns) ? round2(Math.max(0, ns / 1e6 - this.loopResolutionMs)) : 0);
    this.loop = { meanMs: ms(this.histogram.mean), p99Ms: ms(this.histogram.percentile(99)), maxMs: ms(this.histogram.max) };
    // (Node records nothing for the first tick after a reset: a stall that starts within
    // 20 ms of a sample is missed, one interval in 250.)
    this.histogram.reset();
  }

  get rates(): { publishesPerSecond: number; deliveriesPerSecond: number } {
    return { publishesPerSecond: this.publishes.last, deliveriesPerSecond: this.deliveries.last };
  }

  /** The event-loop delay over the last interval sampled. */
  get eventLoop(): EventLoopDelay {
    return { ...this.loop };
  }

  series(): ConsoleSeries {
    return {
      stepMs: this.stepMs,
      end: this.publishes.end || this.last.at,
      publishesPerSecond: this.publishes.toArray(),
      deliveriesPerSecond: this.deliveries.toArray(),
    };
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
  }
}
