/**
 * Is a series drifting? A least-squares line through (x, y) with two standard errors of its
 * slope: the textbook one, which assumes independent residuals, and Newey-West's, which
 * allows for residuals that follow each other (RSS sampled every 5 s moves in steps and
 * sawtooths with the collector, so neighbouring residuals are alike and the textbook error
 * is too small). The judgement uses Newey-West's.
 */

/** z for a two-sided 95% interval (the samples are many, so the normal quantile). */
const Z95 = 1.96;

export function slopeWithError(xs, ys) {
  const n = xs.length;
  if (n < 3) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i] - mx) ** 2;
    sxy += (xs[i] - mx) * (ys[i] - my);
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const e = ys.map((y, i) => y - intercept - slope * xs[i]);
  const sse = e.reduce((a, r) => a + r * r, 0);
  const naiveSe = Math.sqrt(sse / (n - 2) / sxx);
  // Newey-West (Bartlett weights), lag L = floor(4 (n/100)^(2/9)), small-sample factor n/(n-2).
  const lag = Math.floor(4 * (n / 100) ** (2 / 9));
  const u = e.map((r, i) => (xs[i] - mx) * r);
  let s = u.reduce((a, v) => a + v * v, 0);
  for (let l = 1; l <= lag; l++) {
    let c = 0;
    for (let i = l; i < n; i++) c += u[i] * u[i - l];
    s += 2 * (1 - l / (lag + 1)) * c;
  }
  const hacSe = Math.sqrt(Math.max(0, s) * (n / (n - 2))) / sxx;
  return {
    n,
    slope,
    intercept,
    naiveSe,
    hacSe,
    lag,
    ci95: [slope - Z95 * hacSe, slope + Z95 * hacSe],
  };
}

/**
 * The judgement on a slope (units per minute): "indistinguishable from zero" when the 95%
 * interval (Newey-West) contains zero AND |slope| is under `bound`.
 */
export function judgeSlope(fit, bound) {
  if (!fit) return { verdict: 'too few samples', pass: false };
  const containsZero = fit.ci95[0] <= 0 && fit.ci95[1] >= 0;
  const small = Math.abs(fit.slope) < bound;
  const pass = containsZero && small;
  const verdict = pass
    ? 'indistinguishable from zero'
    : !small
      ? `over the bound of ${bound}`
      : 'small but distinguishable from zero (the 95% interval excludes 0)';
  return { verdict, pass, containsZero, small };
}
