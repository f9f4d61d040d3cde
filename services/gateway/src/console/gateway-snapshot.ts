/**
 * One gateway's figures for the console, read from the same sources as /status/ and
 * /metrics (the node's counters, readiness, the bus, its canary, the relay, the transports'
 * connection counts) plus the sampler's rates and event-loop delay.
 */
import { hostname } from 'node:os';
import type { ConsoleConnectionCount, ConsoleServerAddress, GatewaySnapshot } from '@tidings/protocol';
import type { Bus } from '@tidings/bus';
import type { Relay } from '@tidings/relay';
import type { TidingsNode } from '../node';
import type { BusCanary } from '../canary';
import type { Readiness } from '../admin/health';
import type { ConsoleSampler } from './console-sampler';

/** Open connections by instance, per transport (`raw`, `socket.io`). */
export type ConnectionsByTransport = () => Record<string, ReadonlyMap<string, number> | undefined>;

export interface SnapshotSources {
  node: TidingsNode;
  version: string;
  sampler: ConsoleSampler;
  readiness: () => Readiness;
  connections: ConnectionsByTransport;
  servers: () => ConsoleServerAddress[];
  bus?: Bus;
  canary?: BusCanary;
  relay?: Relay;
  now?: () => number;
}

/** Rows of `connections.byInstance` kept (largest first); the totals count every row. */
export const MAX_INSTANCE_ROWS = 20;

export function takeSnapshot(sources: SnapshotSources): GatewaySnapshot {
  const { node, sampler } = sources;
  const at = (sources.now ?? Date.now)();
  const readiness = sources.readiness();
  const rows: ConsoleConnectionCount[] = [];
  const byTransport: Record<string, number> = {};
  let total = 0;
  for (const [transport, counts] of Object.entries(sources.connections())) {
    if (!counts) continue;
    byTransport[transport] = 0;
    for (const [instance, count] of counts) {
      if (count <= 0) continue;
      rows.push({ transport, instance, count });
      byTransport[transport] += count;
      total += count;
    }
  }
  rows.sort((a, b) => b.count - a.count || a.instance.localeCompare(b.instance));
  const c = node.counters;
  const bus = sources.bus;
  const described = bus?.describe?.() ?? {};
  const canary = sources.canary?.snapshot();
  return {
    fingerprint: node.fingerprint,
    version: sources.version,
    hostname: hostname(),
    pid: process.pid,
    servers: sources.servers(),
    at,
    uptimeMs: at - node.startedAt,
    ready: readiness.ready,
    reasons: readiness.reasons,
    connections: { total, byTransport, byInstance: rows.slice(0, MAX_INSTANCE_ROWS) },
    totals: { publishes: c.messagesIn, deliveries: c.messagesOut, fromBus: c.busIn, duplicatesDropped: c.duplicatesDropped },
    rates: sampler.rates,
    slowReaderCloses: c.slowReaderCloses,
    rejected: Object.fromEntries(c.rejected),
    bus: bus
      ? {
          connected: bus.isConnected,
          nodeId: bus.nodeId,
          ...(typeof described.routing === 'string' ? { routing: described.routing } : {}),
          ...(typeof described.reconnects === 'number' ? { reconnects: described.reconnects } : {}),
        }
      : null,
    canary: canary
      ? {
          ageMs: canary.lastOkAt === null ? null : Math.max(0, at - canary.lastOkAt),
          roundTripMs: canary.lastRoundTripMs === null ? null : Math.round(canary.lastRoundTripMs * 100) / 100,
          lastError: canary.lastError,
          failed: canary.failed,
        }
      : null,
    relay: (sources.relay?.status() ?? []).map((p) => ({
      peer: p.peer,
      state: p.state,
      fingerprint: p.fingerprint,
      sent: p.sent,
      failed: p.failed,
      dropped: p.dropped,
      queued: p.queued,
      lastError: p.lastError,
    })),
    eventLoop: sampler.eventLoop,
    series: sampler.series(),
  };
}
