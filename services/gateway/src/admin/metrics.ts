/**
 * Prometheus metrics at `GET /metrics` on the admin port (prom-client, one Registry per
 * gateway so several gateways in one process never share series). Counts are read from the
 * node's counters, the relay's status and the transports when Prometheus scrapes, so the
 * message path does no extra work for metrics; only the two latency histograms are fed as
 * events happen (bus publish from the node, bus round trip from the canary).
 */
import type express from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Bus } from '@tidings/bus';
import type { Relay } from '@tidings/relay';
import type { TidingsNode } from '../node';

/** Live connections of one transport, by instance. */
export type ConnectionSource = () => Iterable<[instance: string, count: number]>;

export interface GatewayMetricsOptions {
  node: TidingsNode;
  bus?: Bus;
  relay?: Relay;
  /** Whether the node is ready (tidings_ready). */
  isReady?: () => boolean;
  /** Process metrics (CPU, memory, GC, event-loop lag); default true. */
  defaultMetrics?: boolean;
  /** Labels on every series (e.g. {node: fingerprint}); default none. */
  defaultLabels?: Record<string, string>;
}

/** Latency buckets in seconds: 0.1 ms to 5 s (a local Redis answers in well under 1 ms). */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly connectionSources = new Map<string, ConnectionSource>();
  private readonly busPublish: Histogram;
  private readonly busRoundTrip: Histogram;

  constructor(options: GatewayMetricsOptions) {
    const { node, bus, relay } = options;
    const registers = [this.registry];
    if (options.defaultLabels) this.registry.setDefaultLabels(options.defaultLabels);
    const sources = this.connectionSources;
    const c = node.counters;

    new Gauge({
      name: 'tidings_connections',
      help: 'Client connections open now, by transport and instance',
      labelNames: ['transport', 'instance'],
      registers,
      collect() {
        this.reset();
        for (const [transport, read] of sources) {
          for (const [instance, count] of read()) this.set({ transport, instance }, count);
        }
      },
    });
    counterFrom('tidings_publishes_total', 'Valid publishes received on the admin port (Aphlict messages.in)', () => c.messagesIn);
    counterFrom('tidings_deliveries_total', 'Messages sent to client sockets (Aphlict messages.out)', () => c.messagesOut);
    counterFrom('tidings_duplicates_dropped_total', 'Messages dropped because this node had delivered their id already', () => c.duplicatesDropped);
    counterFrom('tidings_touched_dropped_total', "Messages dropped because this node's fingerprint was in touched", () => c.touchedDropped);
    counterFrom('tidings_bus_received_total', 'Messages received from the bus and delivered', () => c.busIn);
    counterFrom('tidings_replays_total', 'Replay requests served', () => c.replays);
    counterFrom('tidings_slow_reader_closes_total', 'Sockets cut off because their unsent bytes passed limits.maxBufferedBytes', () => c.slowReaderCloses);
    new Counter({
      name: 'tidings_rejected_total',
      help: 'Inputs refused, by reason (admin error codes, socket frame problems, connection limits)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of c.rejected) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'tidings_internal_errors_total',
      help: 'Defects contained where they happened (one socket closed or one request failed, not the process), by place',
      labelNames: ['where'],
      registers,
      collect() {
        this.reset();
        for (const [where, n] of c.internalErrors) this.inc({ where }, n);
      },
    });
    new Gauge({
      name: 'tidings_history_size',
      help: 'Messages kept in history, by instance (instances with sockets on this node, and default)',
      labelNames: ['instance'],
      registers,
      async collect() {
        this.reset();
        const instances = new Set(node.hub.instances());
        for (const [, read] of sources) for (const [instance] of read()) instances.add(instance);
        instances.add('default');
        try {
          // One round trip per history server, however many instances.
          for (const [instance, size] of await node.history.sizes([...instances])) this.set({ instance }, size);
        } catch {
          // history unreachable: no sample rather than a wrong one; /readyz and /status/ say why
        }
      },
    });
    counterFrom('tidings_replay_entries_read_total', 'History entries read by replays (the windows asked for)', () => c.replayEntriesRead);
    counterFrom('tidings_replay_entries_sent_total', "History entries replays sent (those matching the socket's subscriptions)", () => c.replayEntriesSent);
    const replayRead = new Histogram({
      name: 'tidings_replay_read_seconds',
      help: "Time a replay spent reading its window from history",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    c.replayReadObservers.push((ms) => replayRead.observe(ms / 1000));
    new Gauge({
      name: 'tidings_uptime_seconds',
      help: 'Seconds since this node started',
      registers,
      collect() {
        this.set((Date.now() - node.startedAt) / 1000);
      },
    });
    if (options.isReady) {
      const isReady = options.isReady;
      new Gauge({
        name: 'tidings_ready',
        help: '1 when /readyz answers 200, else 0',
        registers,
        collect() {
          this.set(isReady() ? 1 : 0);
        },
      });
    }

    if (relay) {
      const peerCounter = (name: string, help: string, field: 'sent' | 'failed' | 'dropped') =>
        new Counter({
          name,
          help,
          labelNames: ['peer'],
          registers,
          collect() {
            this.reset();
            for (const p of relay.status()) if (p.state !== 'self') this.inc({ peer: p.peer }, p[field]);
          },
        });
      peerCounter('tidings_relay_sent_total', 'Messages relayed to an Aphlict peer, by peer', 'sent');
      peerCounter('tidings_relay_failed_total', 'Relay requests that failed, by peer', 'failed');
      peerCounter('tidings_relay_dropped_total', "Messages dropped from a peer's full queue, by peer", 'dropped');
      new Gauge({
        name: 'tidings_relay_queued',
        help: 'Messages waiting for a peer, by peer',
        labelNames: ['peer'],
        registers,
        collect() {
          this.reset();
          for (const p of relay.status()) if (p.state !== 'self') this.set({ peer: p.peer }, p.queued);
        },
      });
      new Gauge({
        name: 'tidings_relay_peer_up',
        help: '1 when the last relay to the peer succeeded, by peer',
        labelNames: ['peer'],
        registers,
        collect() {
          this.reset();
          for (const p of relay.status()) if (p.state !== 'self') this.set({ peer: p.peer }, p.state === 'up' ? 1 : 0);
        },
      });
    }

    if (bus) {
      counterFrom(
        'tidings_bus_reconnects_total',
        'Reconnects of a bus that looked connected but did not deliver (asked by the canary)',
        () => Number(bus.describe?.().reconnects ?? 0),
      );
      new Gauge({
        name: 'tidings_bus_connected',
        help: '1 when the bus is connected',
        registers,
        collect() {
          this.set(bus.isConnected ? 1 : 0);
        },
      });
    }
    this.busPublish = new Histogram({
      name: 'tidings_bus_publish_seconds',
      help: 'Time for the bus to accept a publish (with Redis: the history append script, which publishes)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.busRoundTrip = new Histogram({
      name: 'tidings_bus_round_trip_seconds',
      help: "Time for this node's canary to travel through the bus and back",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const historyAppend = new Histogram({
      name: 'tidings_history_append_seconds',
      help: 'Time to store a published message in history (with Redis: the append script that also publishes to the bus)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // With Redis the bus publish is the PUBLISH inside the history append script (one round
    // trip stores and publishes), so that script's time is the bus publish's time as well;
    // a bus that publishes by itself is timed on its own.
    const publishedByHistory = !!(bus as { isPublishedByHistory?: boolean } | undefined)?.isPublishedByHistory;
    node.counters.historyAppendObservers.push(
      publishedByHistory
        ? (ms) => {
            historyAppend.observe(ms / 1000);
            this.busPublish.observe(ms / 1000);
          }
        : (ms) => historyAppend.observe(ms / 1000),
    );
    if (bus && !publishedByHistory) node.counters.busPublishObservers.push((ms) => this.busPublish.observe(ms / 1000));

    if (options.defaultMetrics ?? true) {
      // Process CPU, memory, handles, GC and event-loop lag (nodejs_eventloop_lag_*), read on scrape.
      collectDefaultMetrics({ register: this.registry });
    }

    function counterFrom(name: string, help: string, read: () => number): void {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    }
  }

  /** Counts a transport's connections (raw Aphlict sockets, Socket.IO, ...). */
  addConnections(transport: string, read: ConnectionSource): void {
    this.connectionSources.set(transport, read);
  }

  observeBusRoundTrip(ms: number): void {
    this.busRoundTrip.observe(ms / 1000);
  }

  /** Mounts GET /metrics on the admin app. */
  routes(): (app: express.Express) => void {
    return (app) => {
      app.get('/metrics', async (_req, res) => {
        const text = await this.registry.metrics();
        res.set('Content-Type', this.registry.contentType);
        res.set('Cache-Control', 'no-store');
        res.send(text);
      });
    };
  }
}
