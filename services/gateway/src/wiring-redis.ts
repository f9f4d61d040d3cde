/** Redis bus and shared history, when `redis.url` or `redis.clusterNodes` is set. */
import type { Logger, TidingsConfig } from '@tidings/protocol';
import type { Bus } from '@tidings/bus';
import type { HistoryStore } from '@tidings/history';

export function createRedisCollaborators(_config: TidingsConfig, _logger: Logger): { history?: HistoryStore; bus?: Bus } {
  return {};
}
