/**
 * Small helpers for the benchmark: a seeded PRNG (runs are repeatable), percentiles, the
 * monotonic clock shared by every process on the machine, and table printing.
 */

/** mulberry32: a tiny seeded PRNG, so subscriptions and addressees repeat run to run. */
export function createRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct integers from [0, n). */
export function pickDistinct(random, n, count) {
  const out = new Set();
  while (out.size < Math.min(count, n)) out.add(Math.floor(random() * n));
  return [...out];
}

/**
 * Microseconds on CLOCK_MONOTONIC. process.hrtime reads the system-wide monotonic clock, so
 * a stamp taken in the publisher process can be compared with one taken in a client worker.
 */
export function nowMicros() {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Percentile (0..100) of an unsorted numeric array; null when empty. */
export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Formats a number with a unit, or '-' when it is missing. */
export function fmt(value, digits = 0, unit = '') {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  return `${value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}${unit}`;
}

/** A markdown table from rows of cells. */
export function markdownTable(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

/** The median of a non-empty list of numbers. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
