/**
 * Builds what a config asks for around the node: the fingerprint, history (memory, or
 * shared in Redis), the bus (none, or Redis) and the Aphlict peer relay.
 */
import { createFingerprint, type Logger, type TidingsConfig } from '@tidings/protocol';
import type { GatewayOptions } from './gateway';
import { createRedisCollaborators } from './wiring-redis';
import { createRelayCollaborator } from './wiring-relay';

export function createCollaborators(
  config: TidingsConfig,
  logger: Logger,
): Pick<GatewayOptions, 'fingerprint' | 'history' | 'bus' | 'relay'> {
  const fingerprint = createFingerprint();
  return {
    fingerprint,
    ...createRedisCollaborators(config, logger),
    relay: createRelayCollaborator(config, fingerprint, logger),
  };
}
