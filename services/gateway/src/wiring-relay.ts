/** The Aphlict peer relay, when `cluster` lists peers. */
import type { Logger, TidingsConfig } from '@tidings/protocol';
import type { Relay } from '@tidings/relay';

export function createRelayCollaborator(_config: TidingsConfig, _fingerprint: string, _logger: Logger): Relay | undefined {
  return undefined;
}
