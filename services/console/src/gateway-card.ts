/**
 * One gateway's card: who it is, readiness, connections by transport and instance, rates
 * with their 15-minute chart, bus and canary, relay peers, slow readers, refusals and the
 * event-loop delay. Built once, updated in place every poll (the chart keeps its canvas).
 */
import type { GatewaySnapshot } from '@tidings/protocol';
import { fillRows, h } from './dom';
import { count, duration, ms, rate } from './format';
import { RateChart } from './rate-chart';

function serversText(s: GatewaySnapshot): string {
  return s.servers.map((server) => `${server.type} ${server.listen}:${server.port}${server.tls ? ' (TLS)' : ''}`).join(' · ') || 'not listening';
}

/** A captioned table in a box that scrolls sideways when it must; a heading starting with `#` is a number column. */
function table(caption: string, headings: string[], body: HTMLTableSectionElement): HTMLElement {
  const head = headings.map((t) => h('th', { scope: 'col', class: t.startsWith('#') ? 'num' : undefined }, t.replace(/^#/, '')));
  return h('div', { class: 'scroll' }, h('table', {}, h('caption', {}, caption), h('thead', {}, h('tr', {}, ...head)), body));
}

export class GatewayCard {
  readonly root: HTMLElement;
  private readonly title: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly identity: HTMLElement;
  private readonly reasons: HTMLUListElement;
  private readonly figures: HTMLDListElement;
  private readonly chartSummary: HTMLElement;
  private readonly chart: RateChart;
  private readonly instances: HTMLTableSectionElement;
  private readonly peers: HTMLTableSectionElement;
  private readonly peersSection: HTMLElement;
  private readonly rejected: HTMLTableSectionElement;

  constructor(fingerprint: string, isSelf: boolean) {
    const titleId = `gw-${fingerprint}-title`;
    this.title = h('h3', { id: titleId }, fingerprint);
    this.badge = h('span', { class: 'badge' });
    this.identity = h('p', { class: 'meta' });
    this.reasons = h('ul', { class: 'reasons' });
    this.figures = h('dl', { class: 'figures' });
    this.chartSummary = h('p', { class: 'visually-hidden' });
    const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': `Publishes and deliveries per second over the last 15 minutes on ${fingerprint}` });
    this.instances = h('tbody');
    this.peers = h('tbody');
    this.rejected = h('tbody');
    this.peersSection = table('Relay peers', ['Peer', 'State', 'Fingerprint', '#Sent', '#Failed', '#Dropped', '#Queued'], this.peers);
    this.root = h(
      'article',
      { class: `panel card${isSelf ? ' self' : ''}`, 'aria-labelledby': titleId, 'data-fingerprint': fingerprint },
      h('div', { class: 'card-head' }, this.title, this.badge),
      this.identity,
      this.reasons,
      h('div', { class: 'card-body' }, h('div', { class: 'card-chart' }, chartBox, this.chartSummary), this.figures),
      h(
        'div',
        { class: 'card-tables' },
        table('Connections by instance', ['Instance', 'Transport', '#Connections'], this.instances),
        this.peersSection,
        table('Rejected inputs by reason', ['Reason', '#Since start'], this.rejected),
      ),
    );
    // Drawn at a minimum width until the card is placed; the chart then fits its box.
    this.chart = new RateChart(chartBox);
    if (isSelf) this.title.append(h('span', { class: 'self-note' }, ' (serving this page)'));
  }

  update(s: GatewaySnapshot): void {
    this.badge.textContent = s.ready ? 'ready' : 'unready';
    this.badge.className = `badge ${s.ready ? 'ok' : 'bad'}`;
    this.identity.textContent = `${s.hostname} · pid ${s.pid} · ${serversText(s)} · Tidings ${s.version} · up ${duration(s.uptimeMs)}`;
    this.reasons.replaceChildren(...s.reasons.map((r) => h('li', {}, h('code', {}, r.code), ` ${r.message}`)));

    const figures: [string, string, string][] = [
      ['connections', 'Connections', `${count(s.connections.total)}${Object.keys(s.connections.byTransport).length ? ` (${Object.entries(s.connections.byTransport).map(([t, n]) => `${t} ${count(n)}`).join(', ')})` : ''}`],
      ['publishes', 'Publishes/s', `${rate(s.rates.publishesPerSecond)} (${count(s.totals.publishes)} since start)`],
      ['deliveries', 'Deliveries/s', `${rate(s.rates.deliveriesPerSecond)} (${count(s.totals.deliveries)} since start)`],
      ['bus', 'Bus', s.bus ? `${s.bus.connected ? 'connected' : 'DISCONNECTED'}${s.bus.routing ? `, routing ${s.bus.routing}` : ''}${s.bus.reconnects ? `, ${s.bus.reconnects} repairs` : ''} · ${count(s.totals.fromBus)} received` : 'none (no Redis)'],
      ['canary', 'Canary age', s.canary ? `${s.canary.ageMs === null ? 'none back yet' : duration(s.canary.ageMs)}${s.canary.roundTripMs === null ? '' : ` · round trip ${ms(s.canary.roundTripMs)}`}${s.canary.lastError ? ` · ${s.canary.lastError}` : ''}` : '—'],
      ['loop', 'Event-loop delay', `mean ${ms(s.eventLoop.meanMs)} · p99 ${ms(s.eventLoop.p99Ms)} · max ${ms(s.eventLoop.maxMs)}`],
      ['slow', 'Slow-reader closes', count(s.slowReaderCloses)],
      ['duplicates', 'Duplicates dropped', count(s.totals.duplicatesDropped)],
    ];
    this.figures.replaceChildren(...figures.flatMap(([key, label, value]) => [h('dt', {}, label), h('dd', { 'data-figure': key }, value)]));

    const peak = (values: number[]) => (values.length ? Math.max(...values) : 0);
    this.chartSummary.textContent = `Last 15 minutes: publishes per second peak ${rate(peak(s.series.publishesPerSecond))}, deliveries per second peak ${rate(peak(s.series.deliveriesPerSecond))}.`;
    this.chart.update(s.series);

    fillRows(
      this.instances,
      s.connections.byInstance.map((row) => h('tr', {}, h('td', {}, row.instance), h('td', {}, row.transport), h('td', { class: 'num' }, count(row.count)))),
      3,
      'no connections',
    );
    this.peersSection.hidden = s.relay.length === 0;
    fillRows(
      this.peers,
      s.relay.map((p) =>
        h(
          'tr',
          { 'data-peer': p.peer },
          h('td', {}, p.peer),
          h('td', {}, h('span', { class: `badge ${p.state === 'up' || p.state === 'self' ? 'ok' : p.state === 'down' ? 'bad' : ''}`, title: p.lastError ?? '' }, p.state)),
          h('td', {}, h('code', {}, p.fingerprint ?? '—')),
          h('td', { class: 'num' }, count(p.sent)),
          h('td', { class: 'num' }, count(p.failed)),
          h('td', { class: 'num' }, count(p.dropped)),
          h('td', { class: 'num' }, count(p.queued)),
        ),
      ),
      7,
      'no peers',
    );
    const reasons = Object.entries(s.rejected).sort((a, b) => b[1] - a[1]);
    fillRows(
      this.rejected,
      reasons.map(([reason, n]) => h('tr', {}, h('td', {}, h('code', {}, reason)), h('td', { class: 'num' }, count(n)))),
      2,
      'none',
    );
  }

  destroy(): void {
    this.chart.destroy();
    this.root.remove();
  }
}
