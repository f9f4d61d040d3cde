/** GET /status/: Aphlict's keys, unchanged (tooling parses them), then Tidings' own. */
import { APHLICT_STATUS_VERSION } from '@tidings/protocol';
import type { TidingsNode } from '../node';

export interface StatusExtras {
  /** Sections added by other parts (bus, relay, Socket.IO), keyed by name. */
  [section: string]: () => unknown;
}

export class StatusReporter {
  private readonly extras: StatusExtras = {};

  constructor(
    private readonly node: TidingsNode,
    private readonly version: string,
    private readonly now: () => number = Date.now,
  ) {}

  add(section: string, read: () => unknown): void {
    this.extras[section] = read;
  }

  async report(instance: string): Promise<Record<string, unknown>> {
    const { node } = this;
    const now = this.now();
    let historySize: number | null = null;
    let oldestAgeMs: number | null = null;
    let historyError: string | null = null;
    try {
      const stats = await node.history.stats(instance);
      historySize = stats.size;
      oldestAgeMs = stats.oldestAgeMs;
    } catch (err) {
      historyError = (err as Error).message;
    }
    const c = node.counters;
    const status: Record<string, unknown> = {
      instance,
      uptime: now - node.startedAt,
      'clients.active': node.hub.memberCount(instance),
      'clients.total': node.instances.totalConnections(instance),
      'messages.in': c.messagesIn,
      'messages.out': c.messagesOut,
      version: APHLICT_STATUS_VERSION,
      'history.size': historySize ?? 0,
      'history.age': oldestAgeMs,
      // Tidings' own keys.
      'tidings.version': this.version,
      fingerprint: node.fingerprint,
      'clients.node.active': node.hub.memberCount(),
      'instances.live': node.instances.size,
      'clients.slowReaderCloses': c.slowReaderCloses,
      'messages.duplicatesDropped': c.duplicatesDropped,
      'messages.touchedDropped': c.touchedDropped,
      'messages.fromBus': c.busIn,
      'messages.replays': c.replays,
      'replays.entriesRead': c.replayEntriesRead,
      'replays.entriesSent': c.replayEntriesSent,
      'replays.bytes': c.replayBytes,
      'messages.rejected': Object.fromEntries(c.rejected),
      'errors.internal': Object.fromEntries(c.internalErrors),
      'history.error': historyError,
    };
    for (const [section, read] of Object.entries(this.extras)) status[section] = read();
    return status;
  }
}
