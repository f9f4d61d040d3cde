/**
 * The Aphlict peer relay, when `cluster` lists peers (the node itself may be among them:
 * it recognises its own receipt and stops sending to itself). Settings: `relay.*`.
 *
 * With `auth.adminTokens` the node sends its first token to every peer as `Authorization:
 * Bearer`, so Tidings peers that share it accept the relay (and the node recognises itself
 * through its own, token-guarded admin port); Aphlict peers ignore the header. A `cluster`
 * entry's `path` is the peer's own path prefix, as Phorge uses it (`/TOKEN`).
 */
import type { Logger, TidingsConfig } from '@tidings/protocol';
import { PeerRelay, peerName, type Relay } from '@tidings/relay';

export function createRelayCollaborator(config: TidingsConfig, fingerprint: string, logger: Logger): Relay | undefined {
  if (config.cluster.length === 0) return undefined;
  const { queueSize, timeoutMs, retryMinMs, retryMaxMs, forward } = config.relay;
  const bearerToken: string | undefined = config.auth.adminTokens[0];
  logger.info(
    {
      // Names only: a path prefix may hold the peer's token, and the bearer token is a secret.
      peers: config.cluster.map((p) => `${p.protocol}://${peerName(p)}`),
      authorization: bearerToken === undefined ? 'none' : 'bearer (first auth.adminTokens entry)',
      queueSize,
      timeoutMs,
      retryMinMs,
      retryMaxMs,
      forward,
    },
    'relay: sending to cluster peers',
  );
  return new PeerRelay({ peers: config.cluster, fingerprint, logger, queueSize, timeoutMs, retryMinMs, retryMaxMs, forward, bearerToken });
}
