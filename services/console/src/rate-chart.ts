/**
 * A 15-minute chart of publishes/s and deliveries/s (uPlot on a canvas), sized to its box
 * and resized with it. The canvas is described for screen readers by the text beside it.
 */
import uPlot from 'uplot';
import type { ConsoleSeries } from '@tidings/protocol';

const HEIGHT = 150;
const WINDOW_S = 15 * 60;

/** uPlot's columns from a gateway's series: times in seconds, oldest first. */
export function seriesColumns(series: ConsoleSeries): [number[], number[], number[]] {
  const n = series.publishesPerSecond.length;
  const times = Array.from({ length: n }, (_, i) => (series.end - (n - 1 - i) * series.stepMs) / 1000);
  return [times, series.publishesPerSecond, series.deliveriesPerSecond];
}

export class RateChart {
  private readonly plot: uPlot;
  private readonly resize: ResizeObserver;
  private windowEnd = Date.now() / 1000;

  constructor(private readonly box: HTMLElement) {
    const options: uPlot.Options = {
      width: Math.max(200, box.clientWidth),
      height: HEIGHT,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      // Always the last 15 minutes, whatever the points cover (a gateway that just started has few).
      scales: { x: { time: true, range: () => [this.windowEnd - WINDOW_S, this.windowEnd] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{ stroke: '#5b6470', grid: { stroke: '#e6e8eb' } }, { stroke: '#5b6470', grid: { stroke: '#e6e8eb' }, size: 48 }],
      series: [
        { label: 'time' },
        { label: 'publishes/s', stroke: '#1f6feb', width: 1.5, value: (_u, v) => (v == null ? '—' : v.toFixed(2)) },
        { label: 'deliveries/s', stroke: '#bf5a00', width: 1.5, value: (_u, v) => (v == null ? '—' : v.toFixed(2)) },
      ],
    };
    this.plot = new uPlot(options, [[], [], []], box);
    this.resize = new ResizeObserver(() => {
      const width = Math.max(200, box.clientWidth);
      if (width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    });
    this.resize.observe(box);
  }

  update(series: ConsoleSeries): void {
    this.windowEnd = series.end / 1000;
    this.plot.setData(seriesColumns(series));
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot.destroy();
    this.box.replaceChildren();
  }
}
