/**
 * A small SVG line chart written by hand (no plotting service, no dependency): panels
 * stacked vertically, each a set of polylines over a shared x axis, with y ticks and a
 * legend. Enough to see a leak, a trend or a step in figures sampled over a run.
 */

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Round tick steps (1, 2, 5 x 10^k) covering [lo, hi] with about `count` ticks. */
function ticks(lo, hi, count = 4) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function label(v) {
  const a = Math.abs(v);
  if (v === 0) return '0';
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

/**
 * @param {object} o
 * @param {string} o.title
 * @param {string} o.xLabel
 * @param {{title: string, unit: string, series: {name: string, points: [number, number][]}[], zeroBased?: boolean}[]} o.panels
 * @param {string[]} [o.notes] lines printed under the title
 * @returns {string} the SVG document
 */
export function lineChartSvg({ title, xLabel, panels, notes = [], width = 960, panelHeight = 170 }) {
  const left = 80;
  const right = 200;
  const top = 40 + notes.length * 16;
  const gap = 46;
  const plotW = width - left - right;
  const height = top + panels.length * (panelHeight + gap) + 20;
  const allX = panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)));
  const x1 = Math.max(...allX);
  // An axis that starts within a hair of zero starts at zero.
  const x0 = ((lo) => (lo >= 0 && lo < (x1 - lo) * 0.02 ? 0 : lo))(Math.min(...allX));
  const sx = (x) => left + ((x - x0) / (x1 - x0 || 1)) * plotW;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  notes.forEach((n, i) => out.push(`<text x="${left}" y="${40 + i * 16}" fill="#444">${esc(n)}</text>`));
  panels.forEach((panel, pi) => {
    const y0px = top + pi * (panelHeight + gap) + 18;
    const ys = panel.series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
    let lo = panel.zeroBased ? Math.min(0, ...ys) : Math.min(...ys);
    let hi = Math.max(...ys);
    if (!ys.length) [lo, hi] = [0, 1];
    if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.05;
    if (!panel.zeroBased || lo < 0) lo -= pad;
    hi += pad;
    const sy = (y) => y0px + panelHeight - ((y - lo) / (hi - lo)) * panelHeight;
    out.push(`<text x="${left}" y="${y0px - 6}" font-size="12" font-weight="bold">${esc(panel.title)} (${esc(panel.unit)})</text>`);
    out.push(`<rect x="${left}" y="${y0px}" width="${plotW}" height="${panelHeight}" fill="none" stroke="#999"/>`);
    for (const t of ticks(lo, hi)) {
      if (t < lo || t > hi) continue;
      const y = sy(t).toFixed(1);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${label(t)}</text>`);
    }
    for (const t of ticks(x0, x1, 10)) {
      const x = sx(t).toFixed(1);
      out.push(`<line x1="${x}" x2="${x}" y1="${y0px + panelHeight}" y2="${y0px + panelHeight + 4}" stroke="#999"/>`);
      out.push(`<text x="${x}" y="${y0px + panelHeight + 15}" text-anchor="middle">${label(t)}</text>`);
    }
    panel.series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length];
      const pts = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      if (pts.length) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.join(' ')}"/>`);
      const ly = y0px + 12 + si * 16;
      out.push(`<line x1="${left + plotW + 12}" x2="${left + plotW + 32}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
      out.push(`<text x="${left + plotW + 36}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
    });
  });
  out.push(`<text x="${left + plotW / 2}" y="${height - 6}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
