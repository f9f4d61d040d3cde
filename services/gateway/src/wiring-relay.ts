/**
 * The Aphlict peer relay, when `cluster` lists peers (the node itself may be among them:
 * it recognises its own receipt and stops sending to itself). Settings: `relay.*`.
 */
import type { Logger, TidingsConfig } from '@tidings/protocol';
import { PeerRelay, type Relay } from '@tidings/relay';

export function createRelayCollaborator(config: TidingsConfig, fingerprint: string, logger: Logger): Relay | undefined {
  if (config.cluster.length === 0) return undefined;
  const { queueSize, timeoutMs, retryMinMs, retryMaxMs, forward } = config.relay;
  logger.info(
    { peers: config.cluster.map((p) => `${p.protocol}://${p.host}:${p.port}`), queueSize, timeoutMs, retryMinMs, retryMaxMs, forward },
    'relay: sending to cluster peers',
  );
  return new PeerRelay({ peers: config.cluster, fingerprint, logger, queueSize, timeoutMs, retryMinMs, retryMaxMs, forward });
}
