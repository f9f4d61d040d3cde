/** Node-wide counters, read by /status/ and /metrics. */
export class Counters {
  /** Valid publishes received (Aphlict's messages.in). */
  messagesIn = 0;
  /** Deliveries to sockets (Aphlict's messages.out). */
  messagesOut = 0;
  /** Messages dropped because this node had delivered their id already. */
  duplicatesDropped = 0;
  /** Messages dropped because this node's fingerprint was in `touched`. */
  touchedDropped = 0;
  /** Messages received from the bus and delivered. */
  busIn = 0;
  /** Sockets closed because their unsent bytes passed the bound. */
  slowReaderCloses = 0;
  /** Raw-socket frames written through the pre-encoded fast path, and through ws.send(). */
  rawFastSends = 0;
  rawQueuedSends = 0;
  /** Replays served (both transports). */
  replays = 0;
  /** History entries replays read (the window asked for), and those they sent (matching the socket). */
  replayEntriesRead = 0;
  replayEntriesSent = 0;
  /** Replays by position that could not promise the client everything (epoch changed, or aged out). */
  replaysNotRecovered = 0;
  /** Bytes raw sockets were sent by replays. */
  replayBytes = 0;
  /** Inputs refused, by reason (admin error codes and socket frame problems). */
  readonly rejected = new Map<string, number>();
  /**
   * Defects contained where they happened, by place (`raw_socket`, `socketio`, `admin`,
   * `upgrade`, `unhandled_rejection`): each closed one socket or failed one request, not the process.
   */
  readonly internalErrors = new Map<string, number>();

  /** Called with each bus publish's latency in ms (metrics adds one); none: not timed. */
  readonly busPublishObservers: ((ms: number) => void)[] = [];
  /** Called with each history append's latency in ms (metrics adds one). */
  readonly historyAppendObservers: ((ms: number) => void)[] = [];
  /** Called with each replay's history read time in ms (metrics adds one). */
  readonly replayReadObservers: ((ms: number) => void)[] = [];

  reject(reason: string, count = 1): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + count);
  }

  internalError(where: string): void {
    this.internalErrors.set(where, (this.internalErrors.get(where) ?? 0) + 1);
  }
}
