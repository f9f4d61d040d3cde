/**
 * Health on the admin port, for load balancers and orchestrators:
 * - `GET /healthz`: the process serves (200 `{"status":"ok"}`), even while draining.
 * - `GET /readyz`: 200 `{"status":"ready"}` when this node should get traffic, else 503
 *   `{"status":"unready","reasons":[{"code":...,"message":...}]}`. Ready means its servers
 *   listen and it is not draining, and, when a bus is configured, the bus is connected and a
 *   canary this node sent through it came back recently (proof of delivery, not of a socket).
 */
import type express from 'express';
import type { Bus } from '@tidings/bus';
import type { BusCanary } from '../canary';

export interface UnreadyReason {
  /** Stable: `not_started`, `draining`, `closed`, `bus_disconnected`, `bus_not_delivering`. */
  code: string;
  message: string;
}

export interface Readiness {
  ready: boolean;
  reasons: UnreadyReason[];
}

export interface ReadinessInputs {
  /** The gateway's lifecycle state. */
  state: () => 'new' | 'starting' | 'running' | 'closing' | 'closed';
  bus?: Bus;
  canary?: BusCanary;
}

export function evaluateReadiness({ state, bus, canary }: ReadinessInputs): Readiness {
  const reasons: UnreadyReason[] = [];
  const s = state();
  if (s === 'new' || s === 'starting') reasons.push({ code: 'not_started', message: 'the servers are not listening yet' });
  else if (s === 'closing') reasons.push({ code: 'draining', message: 'the node is shutting down and draining its clients' });
  else if (s === 'closed') reasons.push({ code: 'closed', message: 'the node has shut down' });
  if (bus && !bus.isConnected) reasons.push({ code: 'bus_disconnected', message: 'the bus is not connected' });
  if (canary) {
    const fresh = canary.freshness();
    if (!fresh.ok) reasons.push({ code: 'bus_not_delivering', message: fresh.reason });
  }
  return { ready: reasons.length === 0, reasons };
}

/** Mounts /healthz and /readyz (GET and HEAD) on the admin app. */
export function healthRoutes(readiness: () => Readiness): (app: express.Express) => void {
  return (app) => {
    app.get('/healthz', (_req, res) => {
      res.set('Cache-Control', 'no-store');
      res.status(200).json({ status: 'ok' });
    });
    app.get('/readyz', (_req, res) => {
      const r = readiness();
      res.set('Cache-Control', 'no-store');
      if (r.ready) res.status(200).json({ status: 'ready' });
      else res.status(503).json({ status: 'unready', reasons: r.reasons });
    });
  };
}
