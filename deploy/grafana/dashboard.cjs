// Builds the Grafana dashboard for Tidings gateways (deploy/grafana/tidings.json) from the
// Prometheus metrics each gateway's admin port exports at /metrics. Panels are written as
// data here so their grid positions and ids follow from their order; regenerate with
//   node deploy/grafana/dashboard.cjs > deploy/grafana/tidings.json
// test/ops/dashboards.spec.ts checks the file is current and that every metric and label
// it queries is one a live gateway exports.
//
// Labels: `job` and `instance` are Prometheus' target labels (instance = one gateway's admin
// address). The gateway's own `instance` label (the Phorge instance, on tidings_connections
// and tidings_history_size) collides with it and arrives as `exported_instance`.
'use strict';

const DS = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };
/** Every gateway of the chosen job (cluster-wide panels). */
const JOB = 'job=~"$job"';
/** The gateways chosen in the `gateway` variable. */
const SEL = 'job=~"$job", instance=~"$gateway"';
const RATE = '[$__rate_interval]';

const rate = (metric, sel = SEL) => `rate(${metric}{${sel}}${RATE})`;
const quantile = (q, histogram, by = 'instance') =>
  `histogram_quantile(${q}, sum by (${by}, le) (rate(${histogram}_bucket{${SEL}}${RATE})))`;

/** A query: expr plus its legend. */
const q = (expr, legend) => ({ expr, legend });

/**
 * Rows of panels, in order. Each panel: title, description, kind (timeseries, stat,
 * state), unit, width (of 24), queries; `height` defaults to 8.
 */
const ROWS = [
  {
    title: 'Cluster overview',
    panels: [
      {
        title: 'Ready gateways',
        description: 'Gateways whose /readyz answers 200, and gateways Prometheus scrapes. Fewer ready than scraped: see the Bus and relay row.',
        kind: 'stat',
        unit: 'short',
        width: 6,
        height: 5,
        queries: [q(`sum(tidings_ready{${JOB}})`, 'ready'), q(`count(up{${JOB}})`, 'scraped')],
      },
      {
        title: 'Connections',
        description: 'Client sockets open on all gateways (raw Aphlict WebSockets and Socket.IO).',
        kind: 'stat',
        unit: 'short',
        width: 6,
        height: 5,
        queries: [q(`sum(tidings_connections{${JOB}})`, 'connections')],
      },
      {
        title: 'Publishes/s',
        description: 'Valid publishes received on the admin ports (Aphlict messages.in), all gateways.',
        kind: 'stat',
        unit: 'ops',
        width: 6,
        height: 5,
        queries: [q(`sum(${rate('tidings_publishes_total', JOB)})`, 'publishes/s')],
      },
      {
        title: 'Deliveries/s',
        description: 'Messages written to client sockets (Aphlict messages.out), all gateways.',
        kind: 'stat',
        unit: 'ops',
        width: 6,
        height: 5,
        queries: [q(`sum(${rate('tidings_deliveries_total', JOB)})`, 'deliveries/s')],
      },
      {
        title: 'Connections by transport',
        description: 'raw: Aphlict WebSockets; socket.io: Socket.IO connections.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`sum by (transport) (tidings_connections{${JOB}})`, '{{transport}}')],
      },
      {
        title: 'Publishes and deliveries',
        description: 'A publish is counted once, on the gateway that received it; its deliveries on every gateway that wrote it to a socket.',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [
          q(`sum(${rate('tidings_publishes_total', JOB)})`, 'publishes/s'),
          q(`sum(${rate('tidings_deliveries_total', JOB)})`, 'deliveries/s'),
        ],
      },
      {
        title: 'Ready gateways over time',
        description: 'Ready against scraped. A dip during a rolling restart is one node draining.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`sum(tidings_ready{${JOB}})`, 'ready'), q(`count(up{${JOB}})`, 'scraped')],
      },
    ],
  },
  {
    title: 'Per gateway',
    panels: [
      {
        title: 'Readiness',
        description: 'tidings_ready per gateway. Reasons for unready are in GET /readyz (bus_disconnected, bus_not_delivering, draining).',
        kind: 'state',
        width: 12,
        queries: [q(`tidings_ready{${SEL}}`, '{{instance}}')],
        states: ['unready', 'ready'],
      },
      {
        title: 'Connections per gateway',
        description: 'Client sockets per gateway; HAProxy balances new ones by fewest connections.',
        kind: 'timeseries',
        unit: 'short',
        width: 12,
        queries: [q(`sum by (instance) (tidings_connections{${SEL}})`, '{{instance}}')],
      },
      {
        title: 'Publishes/s per gateway',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance) (${rate('tidings_publishes_total')})`, '{{instance}}')],
      },
      {
        title: 'Deliveries/s per gateway',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance) (${rate('tidings_deliveries_total')})`, '{{instance}}')],
      },
      {
        title: 'Dropped repeats/s',
        description: 'Messages a gateway had delivered already (same id by another path) and messages that came back to a node already in `touched`. Expected with relay and bus together.',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [
          q(`sum by (instance) (${rate('tidings_duplicates_dropped_total')})`, '{{instance}} duplicates'),
          q(`sum by (instance) (${rate('tidings_touched_dropped_total')})`, '{{instance}} touched'),
        ],
      },
      {
        title: 'Connections by Phorge instance (top 10)',
        description: "The gateway's `instance` label (the tenant), renamed exported_instance by Prometheus.",
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`topk(10, sum by (exported_instance) (tidings_connections{${SEL}}))`, '{{exported_instance}}')],
      },
      {
        title: 'History size by Phorge instance (top 10)',
        description: 'Messages kept for replay. With Redis every gateway reads the same shared history, so the largest report is shown, not the sum.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`topk(10, max by (exported_instance) (tidings_history_size{${SEL}}))`, '{{exported_instance}}')],
      },
      {
        title: 'History append time (p99)',
        description: 'Storing a published message (with Redis: the append script, which also publishes to the bus).',
        kind: 'timeseries',
        unit: 's',
        width: 8,
        queries: [q(quantile(0.99, 'tidings_history_append_seconds'), '{{instance}}')],
      },
    ],
  },
  {
    title: 'Bus and relay',
    panels: [
      {
        title: 'Bus connected',
        description: 'The Redis bus connection of each gateway (absent without Redis).',
        kind: 'state',
        width: 8,
        queries: [q(`tidings_bus_connected{${SEL}}`, '{{instance}}')],
        states: ['disconnected', 'connected'],
      },
      {
        title: 'Canary round trip',
        description: "Time for each gateway's canary to travel through the bus and back (every health.canaryIntervalMs).",
        kind: 'timeseries',
        unit: 's',
        width: 8,
        queries: [
          q(quantile(0.5, 'tidings_bus_round_trip_seconds'), '{{instance}} p50'),
          q(quantile(0.99, 'tidings_bus_round_trip_seconds'), '{{instance}} p99'),
        ],
      },
      {
        title: 'Canaries back/s',
        description: 'Round trips completed. 0 with the bus connected means a silent subscription: the node turns unready and reconnects it.',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance) (${rate('tidings_bus_round_trip_seconds_count')})`, '{{instance}}')],
      },
      {
        title: 'Bus publish time (p99)',
        kind: 'timeseries',
        unit: 's',
        width: 8,
        queries: [q(quantile(0.99, 'tidings_bus_publish_seconds'), '{{instance}}')],
      },
      {
        title: 'Bus received/s',
        description: 'Messages other gateways published that this one received from the bus and delivered.',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance) (${rate('tidings_bus_received_total')})`, '{{instance}}')],
      },
      {
        title: 'Bus reconnects',
        description: 'Reconnects the canary asked of a bus that looked connected but did not deliver.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`sum by (instance) (increase(tidings_bus_reconnects_total{${SEL}}${RATE}))`, '{{instance}}')],
      },
      {
        title: 'Relay sent/s',
        description: 'Messages relayed to Aphlict-protocol peers (the `cluster` list), by peer.',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance, peer) (${rate('tidings_relay_sent_total')})`, '{{instance}} → {{peer}}')],
      },
      {
        title: 'Relay failed and dropped/s',
        description: "Failed relay requests, and messages dropped from a peer's full queue (relay.queueSize): those are lost for that peer's sockets unless a Redis bus also carries them.",
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [
          q(`sum by (instance, peer) (${rate('tidings_relay_failed_total')})`, '{{instance}} → {{peer}} failed'),
          q(`sum by (instance, peer) (${rate('tidings_relay_dropped_total')})`, '{{instance}} → {{peer}} dropped'),
        ],
      },
      {
        title: 'Relay queued',
        description: 'Messages waiting for a peer.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`tidings_relay_queued{${SEL}}`, '{{instance}} → {{peer}}')],
      },
      {
        title: 'Relay peer up',
        description: 'Whether the last relay to each peer succeeded (down until the first relay).',
        kind: 'state',
        width: 24,
        height: 6,
        queries: [q(`tidings_relay_peer_up{${SEL}}`, '{{instance}} → {{peer}}')],
        states: ['down', 'up'],
      },
    ],
  },
  {
    title: 'Clients',
    panels: [
      {
        title: 'Slow-reader closes/s',
        description: 'Sockets cut off because their unsent bytes passed limits.maxBufferedBytes.',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance) (${rate('tidings_slow_reader_closes_total')})`, '{{instance}}')],
      },
      {
        title: 'Rejected inputs by reason',
        description: 'Publishes and socket frames refused (admin error codes, frame problems, connection limits, unauthorized, rate_limited).',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (reason) (${rate('tidings_rejected_total')})`, '{{reason}}')],
      },
      {
        title: 'Internal errors',
        description: 'Defects contained where they happened (one socket closed or one request failed), by place. Any is a bug: see the log.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`sum by (instance, where) (increase(tidings_internal_errors_total{${SEL}}${RATE}))`, '{{instance}} {{where}}')],
      },
      {
        title: 'Replays/s',
        description: 'Replay requests served (browsers ask on every reconnect).',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (instance) (${rate('tidings_replays_total')})`, '{{instance}}')],
      },
      {
        title: 'Replay cost',
        description: 'History entries replays read (the windows asked for) and sent (those matching the sockets\' subscriptions).',
        kind: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [
          q(`sum(${rate('tidings_replay_entries_read_total')})`, 'entries read/s'),
          q(`sum(${rate('tidings_replay_entries_sent_total')})`, 'entries sent/s'),
        ],
      },
      {
        title: 'Replay read time (p99)',
        kind: 'timeseries',
        unit: 's',
        width: 8,
        queries: [q(quantile(0.99, 'tidings_replay_read_seconds'), '{{instance}}')],
      },
    ],
  },
  {
    title: 'Process',
    panels: [
      {
        title: 'Event-loop lag',
        description: 'p50 and p99 of the event-loop delay over each scrape interval (prom-client). Over 100 ms for minutes fires TidingsEventLoopLagHigh.',
        kind: 'timeseries',
        unit: 's',
        width: 8,
        queries: [
          q(`nodejs_eventloop_lag_p99_seconds{${SEL}}`, '{{instance}} p99'),
          q(`nodejs_eventloop_lag_p50_seconds{${SEL}}`, '{{instance}} p50'),
        ],
      },
      {
        title: 'CPU',
        description: 'User and system CPU time per second: 100% is one core, which a single gateway process cannot exceed by much.',
        kind: 'timeseries',
        unit: 'percentunit',
        width: 8,
        queries: [q(rate('process_cpu_seconds_total'), '{{instance}}')],
      },
      {
        title: 'Memory',
        description: 'Resident set size, and the V8 heap in use.',
        kind: 'timeseries',
        unit: 'bytes',
        width: 8,
        queries: [
          q(`process_resident_memory_bytes{${SEL}}`, '{{instance}} RSS'),
          q(`nodejs_heap_size_used_bytes{${SEL}}`, '{{instance}} heap used'),
        ],
      },
      {
        title: 'GC time',
        description: 'Share of time spent in garbage collection, by kind.',
        kind: 'timeseries',
        unit: 'percentunit',
        width: 8,
        queries: [q(`sum by (instance, kind) (${rate('nodejs_gc_duration_seconds_sum')})`, '{{instance}} {{kind}}')],
      },
      {
        title: 'Open file descriptors',
        description: 'One per client socket plus a few; the limit is LimitNOFILE in the systemd unit.',
        kind: 'timeseries',
        unit: 'short',
        width: 8,
        queries: [q(`process_open_fds{${SEL}}`, '{{instance}} open'), q(`process_max_fds{${SEL}}`, '{{instance}} limit')],
      },
      {
        title: 'Uptime',
        kind: 'stat',
        unit: 's',
        width: 8,
        queries: [q(`tidings_uptime_seconds{${SEL}}`, '{{instance}}')],
      },
    ],
  },
];

const TEMPLATING = [
  {
    name: 'DS_PROMETHEUS',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    regex: '',
    options: [],
  },
  {
    name: 'job',
    label: 'Job',
    type: 'query',
    datasource: DS,
    definition: 'label_values(tidings_uptime_seconds, job)',
    query: 'label_values(tidings_uptime_seconds, job)',
    current: {},
    hide: 0,
    includeAll: false,
    multi: false,
    refresh: 2,
    regex: '',
    sort: 1,
    options: [],
  },
  {
    name: 'gateway',
    label: 'Gateway',
    description: "Prometheus' instance label: a gateway's admin address",
    type: 'query',
    datasource: DS,
    definition: `label_values(tidings_uptime_seconds{${JOB}}, instance)`,
    query: `label_values(tidings_uptime_seconds{${JOB}}, instance)`,
    current: {},
    hide: 0,
    includeAll: true,
    allValue: '.*',
    multi: true,
    refresh: 2,
    regex: '',
    sort: 1,
    options: [],
  },
];

function fieldConfig(panel) {
  if (panel.kind === 'state') {
    const [off, on] = panel.states;
    return {
      defaults: {
        color: { mode: 'thresholds' },
        mappings: [{ type: 'value', options: { 0: { text: off, color: 'red', index: 0 }, 1: { text: on, color: 'green', index: 1 } } }],
        thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] },
      },
      overrides: [],
    };
  }
  const defaults = { unit: panel.unit, min: 0, color: { mode: panel.kind === 'stat' ? 'thresholds' : 'palette-classic' } };
  if (panel.kind === 'timeseries') {
    defaults.custom = { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never', spanNulls: false };
  } else {
    defaults.thresholds = { mode: 'absolute', steps: [{ color: 'green', value: null }] };
  }
  return { defaults, overrides: [] };
}

function options(panel) {
  if (panel.kind === 'stat') {
    return {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      justifyMode: 'auto',
      orientation: 'auto',
      textMode: 'value_and_name',
    };
  }
  const legend = { displayMode: 'list', placement: 'bottom', showLegend: true };
  if (panel.kind === 'state') return { legend, mergeValues: true, rowHeight: 0.9, showValue: 'never', tooltip: { mode: 'single', sort: 'none' } };
  return { legend, tooltip: { mode: 'multi', sort: 'desc' } };
}

function dashboard() {
  const panels = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({ type: 'row', id: id++, title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      const h = p.height ?? 8;
      if (x + p.width > 24) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      panels.push({
        type: p.kind === 'state' ? 'state-timeline' : p.kind,
        id: id++,
        title: p.title,
        ...(p.description ? { description: p.description } : {}),
        datasource: DS,
        gridPos: { h, w: p.width, x, y },
        fieldConfig: fieldConfig(p),
        options: options(p),
        targets: p.queries.map((query, i) => ({
          datasource: DS,
          editorMode: 'code',
          expr: query.expr,
          legendFormat: query.legend,
          range: true,
          refId: String.fromCharCode(65 + i),
        })),
      });
      x += p.width;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    description:
      "Tidings gateways: connections, publishes and deliveries, the Redis bus and its canary, the Aphlict peer relay, client refusals, and each process. Generated by deploy/grafana/dashboard.cjs. A gateway's own instance label (the Phorge instance) is exported_instance here.",
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [],
    panels,
    refresh: '30s',
    schemaVersion: 39,
    tags: ['tidings', 'aphlict', 'phorge'],
    templating: { list: TEMPLATING },
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: '',
    title: 'Tidings',
    uid: 'tidings-gateways',
    version: 1,
    weekStart: '',
  };
}

/** The file's text: two-space JSON and a final newline. */
function dashboardJson() {
  return `${JSON.stringify(dashboard(), null, 2)}\n`;
}

module.exports = { dashboard, dashboardJson };

if (require.main === module) process.stdout.write(dashboardJson());
