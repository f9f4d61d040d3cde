/**
 * A fixed window of rates in memory (the console's charts): one point per step, the
 * oldest dropped once the window is full. 15 minutes of 5 s steps is 180 points a series.
 */
export interface RateSeriesOptions {
  /** Time between points, ms. */
  stepMs: number;
  /** Points kept. */
  points: number;
}

export class RateSeries {
  private readonly values: number[] = [];
  /** When the newest point's interval ended (epoch ms); 0 before the first point. */
  private endAt = 0;

  constructor(private readonly options: RateSeriesOptions) {
    if (!(options.stepMs > 0) || !(options.points > 0)) throw new Error('RateSeries: stepMs and points must be positive');
  }

  /** Adds the rate of `count` events over `elapsedMs` ending at `at` (per second, 3 significant decimals). */
  add(count: number, elapsedMs: number, at: number): number {
    const rate = elapsedMs > 0 ? Math.round((count * 1_000_000) / elapsedMs) / 1000 : 0;
    this.values.push(rate);
    if (this.values.length > this.options.points) this.values.shift();
    this.endAt = at;
    return rate;
  }

  /** The newest point; 0 before the first. */
  get last(): number {
    return this.values.length ? this.values[this.values.length - 1] : 0;
  }

  get end(): number {
    return this.endAt;
  }

  /** A copy, oldest first. */
  toArray(): number[] {
    return [...this.values];
  }
}
