/**
 * The console's API (`/console/api/*` on the admin port), shared by the gateway that serves
 * it and the page that reads it. Types only: the page imports them without pulling this
 * package's runtime (zod, node:crypto) into its bundle.
 *
 * A gateway builds one GatewaySnapshot of itself every few seconds; with Redis it announces
 * it there, so whichever gateway serves the page can show the whole cluster.
 */

/** One listening server of a gateway, as it bound it. */
export interface ConsoleServerAddress {
  type: 'client' | 'admin';
  /** The address it listens on (`0.0.0.0` or `::` for every interface). */
  listen: string;
  port: number;
  tls: boolean;
}

/** Open client connections of one transport in one instance. */
export interface ConsoleConnectionCount {
  transport: string;
  instance: string;
  count: number;
}

/** Rates over the last 15 minutes, one point per step (oldest first); the last point ends at `end`. */
export interface ConsoleSeries {
  stepMs: number;
  /** Epoch ms at which the newest point's interval ended (the gateway's clock). */
  end: number;
  publishesPerSecond: number[];
  deliveriesPerSecond: number[];
}

/** An Aphlict relay peer as the gateway sees it (libs/relay PeerStatus, the fields shown). */
export interface ConsoleRelayPeer {
  peer: string;
  state: 'up' | 'down' | 'unknown' | 'self';
  fingerprint: string | null;
  sent: number;
  failed: number;
  dropped: number;
  queued: number;
  lastError: string | null;
}

export interface GatewaySnapshot {
  fingerprint: string;
  /** Tidings version (`tidings.version` in /status/). */
  version: string;
  hostname: string;
  pid: number;
  servers: ConsoleServerAddress[];
  /** When this snapshot was taken, epoch ms (the gateway's clock). */
  at: number;
  uptimeMs: number;
  ready: boolean;
  /** Why not ready (the /readyz reasons); empty when ready. */
  reasons: { code: string; message: string }[];
  connections: {
    total: number;
    byTransport: Record<string, number>;
    /** Largest first, at most 20 rows; `total` counts them all. */
    byInstance: ConsoleConnectionCount[];
  };
  /** Since start (Aphlict's `messages.in` / `messages.out`). */
  totals: { publishes: number; deliveries: number; fromBus: number; duplicatesDropped: number };
  /** The last sampled interval. */
  rates: { publishesPerSecond: number; deliveriesPerSecond: number };
  slowReaderCloses: number;
  /** Inputs refused since start, by reason (`messages.rejected` in /status/). */
  rejected: Record<string, number>;
  /** null without a bus (no Redis). */
  bus: { connected: boolean; nodeId: string; routing?: string; reconnects?: number } | null;
  /** null without a bus. `ageMs`: since the last canary came back (null: none yet). */
  canary: { ageMs: number | null; roundTripMs: number | null; lastError: string | null; failed: number } | null;
  relay: ConsoleRelayPeer[];
  /** Event-loop delay over the last sampling interval, ms (perf_hooks.monitorEventLoopDelay). */
  eventLoop: { meanMs: number; p99Ms: number; maxMs: number };
  series: ConsoleSeries;
}

/** GET /console/api/overview */
export interface ConsoleOverview {
  /** The gateway that answered. */
  self: string;
  /**
   * Where the other gateways come from: `redis` (their announcements), `relay` (this
   * gateway's Aphlict peers, known by relay status only), or `none` (a single gateway).
   */
  cluster: 'redis' | 'relay' | 'none';
  /** Why the Redis view is missing or partial, when it is. */
  clusterError: string | null;
  /** This gateway first (taken now), then the others announced in Redis, by fingerprint. */
  gateways: GatewaySnapshot[];
  /** What the page's live tail needs. */
  tail: {
    /** `auth.clientTokens.mode`. */
    clientTokens: 'off' | 'required';
    /** Whether POST /console/api/client-token can mint one (`auth.clientTokens.hmacSecret` set). */
    canMintTokens: boolean;
    /** Whether the client port serves Socket.IO, and where. */
    socketioPath: string | null;
  };
}

/** POST /console/api/client-token: the body. */
export interface ConsoleTokenRequest {
  instance: string;
  phids: string[];
}

/** POST /console/api/client-token: the answer. */
export interface ConsoleTokenResponse {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
}
