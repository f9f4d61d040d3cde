/**
 * Who may open a client connection, decided once per connection for both transports (the
 * raw upgrade and the Socket.IO handshake), cheapest checks first:
 *   draining (503), limits.maxConnections (503), the instance name rule (400),
 *   limits.maxInstances (503), limits.maxConnectionsPerIp (429), and, with
 *   auth.clientTokens.mode "required", a signed connection token (401).
 * A connection that is let in carries its source address (X-Forwarded-For believed only
 * from limits.trustProxy) and its grant: the PHIDs it may subscribe to, and when it must
 * be closed. Each refusal has a stable reason, which the transport counts and logs; no
 * token ever reaches a log line or a reason.
 */
import { INSTANCE_RULE, isValidInstance } from '@tidings/protocol';
import type { Grant } from '@tidings/auth';
import type { AuthCollaborators } from '../wiring-auth';
import type { TidingsNode } from '../node';

export interface AdmissionRequest {
  instance: string;
  /** The TCP peer's address. */
  remoteAddress: string | undefined;
  /** X-Forwarded-For, believed only from limits.trustProxy. */
  forwardedFor: string | readonly string[] | undefined;
  /** The connection token, if the client sent one. */
  token: string | undefined;
  /** Whether openConnections() already counts this connection (a Socket.IO handshake's engine.io connection). */
  counted?: boolean;
}

export type Admission =
  | {
      ok: true;
      /** The client's address (after trusted proxies). */
      address: string;
      /** What the connection's token allows; undefined when tokens are off. */
      grant?: Grant;
      /** Frees the per-address slot; call once when the connection ends (or never opens). */
      release(): void;
    }
  | {
      ok: false;
      status: 400 | 401 | 429 | 503;
      /** Counter label: draining, connection_limit, invalid_instance, instance_limit, address_limit, token_<reason>. */
      reason: string;
      /** What the client is told. */
      message: string;
      /** What the log says (never a token). */
      detail: string;
    };

export interface ClientAdmissionOptions {
  node: TidingsNode;
  auth: AuthCollaborators;
  /** limits.maxConnections (0: none). */
  maxConnections: number;
  /** limits.maxConnectionsPerIp (0: none). */
  maxConnectionsPerIp: number;
  /** Open client connections of every transport. */
  openConnections: () => number;
}

export class ClientAdmission {
  private accepting = true;
  /** Connections admitted but not yet counted by their transport (a token being verified). */
  private pending = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly options: ClientAdmissionOptions) {}

  /** Refuses every connection from now on (shutdown). */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Connections held per address now (tests, status). */
  get addresses(): number {
    return this.perAddress.size;
  }

  async admit(request: AdmissionRequest): Promise<Admission> {
    const { node, auth, maxConnections, maxConnectionsPerIp, openConnections } = this.options;
    if (!this.accepting) return refuse(503, 'draining', 'shutting down', 'shutting down');
    if (maxConnections > 0 && openConnections() - (request.counted ? 1 : 0) + this.pending >= maxConnections) {
      return refuse(503, 'connection_limit', 'too many connections', 'too many connections (limits.maxConnections)');
    }
    if (!isValidInstance(request.instance)) return refuse(400, 'invalid_instance', INSTANCE_RULE, 'invalid instance name');
    if (!node.instances.canAdmit(request.instance)) {
      return refuse(503, 'instance_limit', 'too many instances', 'too many instances (limits.maxInstances)');
    }
    const address = auth.clientAddress.resolve(request.remoteAddress, request.forwardedFor) ?? 'unknown';
    const held = this.perAddress.get(address) ?? 0;
    if (maxConnectionsPerIp > 0 && held >= maxConnectionsPerIp) {
      return refuse(429, 'address_limit', 'too many connections from this address', `too many connections from ${address} (limits.maxConnectionsPerIp)`);
    }
    // The slot is taken before the (slower) token check, so one address cannot start more
    // verifications at once than it may hold connections.
    this.perAddress.set(address, held + 1);
    this.pending++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    };
    try {
      if (!auth.clientTokens.required) return { ok: true, address, release };
      const verified = await auth.clientTokens.verify(request.token, { instance: request.instance });
      if (!verified.ok) {
        release();
        return refuse(401, `token_${verified.reason}`, 'unauthorized', `connection token refused (${verified.reason}): ${verified.message}`);
      }
      return { ok: true, address, grant: verified.grant, release };
    } finally {
      this.pending--;
    }
  }
}

function refuse(status: 400 | 401 | 429 | 503, reason: string, message: string, detail: string): Admission {
  return { ok: false, status, reason, message, detail };
}

/** The longest a timer may wait in Node (about 24.8 days); a later expiry is re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `onExpired` when the grant expires (the connection must then be closed). Returns a
 * function that cancels it. No grant: nothing to do.
 */
export function watchExpiry(grant: Grant | undefined, onExpired: () => void, now: () => number = Date.now): () => void {
  if (!grant) return () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = grant.expiresAt - now();
    if (left <= 0) return onExpired();
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
