/**
 * From the scale bench's measurements to per-message constants, and from those to a
 * capacity model (bench/SCALE.md explains the model and its assumptions).
 *
 * Each constant comes from the measurement that isolates it, taken in alternating phases
 * where two figures are subtracted: on this shared 2-core VM the cost of one event changes
 * with the load and the rate (a busy process handles several messages per wake-up) by more
 * than a delivery or a copy costs, and a joint fit over separate clusters turned such drift
 * into negative constants.
 * - gateway per publish accepted (a, per mode) and per copy decoded with no recipient (r):
 *   the rates step (one gateway accepting publishes that have no recipient anywhere, one
 *   holding sockets never addressed), at its highest rate; a includes broadcast's own echo;
 * - gateway per delivery (d): the Phorge clusters' calibration, 1 and 10 addressees per
 *   message alternating: the change in the cluster's gateway CPU per publish over the change
 *   in deliveries per publish (under interest the copies' share, r each, taken off);
 * - Redis per copy (beta, per mode): Redis alone, 1 to 16 copies alternating
 *   (scale-fanout.mjs); per publish (alpha): the rates step's Redis CPU per publish less its
 *   copies x beta; per extra PHID addressed (kappa): the calibration, the change in Redis CPU
 *   less beta x the change in copies, per PHID, scaled to the rates step's rate;
 * - bytes Redis sends per publish (gamma) and per copy (delta): a straight line through
 *   bytes per publish against copies per publish over every phase with 5 addressees (one
 *   message size; exact).
 */

/** Least squares line y = a + b x; returns {a, b, r2}. */
export function line(points) {
  const n = points.length;
  if (n < 2) return { a: NaN, b: NaN, r2: NaN };
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  const b = sxy / sxx;
  return { a: my - b * mx, b, r2: syy > 0 ? (sxy * sxy) / (sxx * syy) : NaN };
}

const sum = (xs, f) => xs.reduce((s, x) => s + f(x), 0);

/**
 * The calibration's deliveries constant (d) and Redis's per-PHID constant (kappa at the
 * calibration's rate), per mode, from phases recorded with kind 'calibration' (summed over
 * the alternating segments of each addressee count), and the bytes line from the 'layout'
 * phases. A phase: {mode, kind, phidsPerMessage, publishes, copies, redisUs, redisBytes,
 * gateways: [{us, decoded, deliveries}]}, CPU and bytes net of background.
 */
export function calibrate(phases, modes, { perDecoded, redisPerCopy }) {
  const out = {};
  for (const mode of modes) {
    const groups = new Map();
    for (const p of phases.filter((x) => x.mode === mode && x.kind === 'calibration')) {
      const g = groups.get(p.phidsPerMessage) ?? { phids: p.phidsPerMessage, publishes: 0, copies: 0, redisUs: 0, us: 0, decoded: 0, deliveries: 0 };
      g.publishes += p.publishes;
      g.copies += p.copies;
      g.redisUs += p.redisUs;
      g.us += sum(p.gateways, (x) => x.us);
      g.decoded += sum(p.gateways, (x) => x.decoded);
      g.deliveries += sum(p.gateways, (x) => x.deliveries);
      groups.set(p.phidsPerMessage, g);
    }
    const sorted = [...groups.values()].sort((a, b) => a.phids - b.phids);
    // Every phase with 5 addressees (one message size): layouts, Phorge, rates step.
    const bytes = line(phases.filter((p) => p.mode === mode && p.phidsPerMessage === 5).map((p) => [p.copies / p.publishes, p.redisBytes / p.publishes]));
    const result = { bytes, calibration: sorted };
    if (sorted.length >= 2) {
      const [lo, hi] = [sorted[0], sorted[sorted.length - 1]];
      const per = (g, k) => g[k] / g.publishes;
      const dCopies = per(hi, 'decoded') - per(lo, 'decoded');
      result.perDelivery = (per(hi, 'us') - per(lo, 'us') - (mode === 'interest' ? perDecoded * dCopies : 0)) / (per(hi, 'deliveries') - per(lo, 'deliveries'));
      result.perPhid = (per(hi, 'redisUs') - per(lo, 'redisUs') - redisPerCopy[mode] * (per(hi, 'copies') - per(lo, 'copies'))) / (hi.phids - lo.phids);
    }
    out[mode] = result;
  }
  return out;
}

/**
 * Copies per publish under interest for G gateways: every gateway but the accepting one
 * that holds one of `n` recipients (sockets, or users when a user's sockets share one
 * gateway) placed uniformly at random.
 */
export const interestCopies = (G, n) => (G - 1) * (1 - (1 - 1 / G) ** n);

/**
 * The load of a cluster of G gateways (one process on one core each) carrying `sockets` at
 * `rate` publishes/s, each to `phids` PHIDs with `recipients` deliveries:
 * - gateway CPU (cores, each): (rate x a + decoded x r + rate x recipients x d) / G
 *   + sockets / G / pingSeconds x ping + background; decoded = rate x (G - 1) with
 *   broadcast (every gateway decodes every other gateway's messages; its own echo is in a),
 *   rate x copies with interest;
 * - Redis CPU (cores, one shard): rate x (alpha + kappa x (phids - 5) + beta x copies),
 *   copies = G (broadcast) or interestCopies (interest); alpha was measured with 5 PHIDs;
 * - Redis output (bytes/s): rate x (gamma + delta x copies).
 */
export function loadAt({ G, mode, constants, sockets, rate, recipients, phids, copies, pingUs, pingSeconds, backgroundUs }) {
  const c = constants[mode];
  const decoded = mode === 'interest' ? rate * copies : rate * (G - 1);
  const gatewayUs =
    (rate * c.gateway.perAccepted + decoded * c.gateway.perDecoded + rate * recipients * c.gateway.perDelivery) / G + (sockets / G / pingSeconds) * pingUs + backgroundUs;
  return {
    G,
    copies,
    gatewayCores: gatewayUs / 1e6,
    redisCores: (rate * (c.redis.perPublish + c.redis.perPhid * (phids - 5) + c.redis.perCopy * copies)) / 1e6,
    redisBytesPerSecond: rate * (c.bytes.perPublish + c.bytes.perCopy * copies),
  };
}
