/**
 * The instances (tenants) this node holds state for, and the bound on how many.
 *
 * Per-instance state on a node: the sockets of that instance (and what the hub, Socket.IO,
 * /status/ and /metrics keep for them), Aphlict's `clients.total`, and, without Redis, the
 * instance's history in memory. Any client can name an instance, so all of it is bounded
 * here: a socket or a locally stored publish may open a new instance only while fewer than
 * `limits.maxInstances` are live; past it they are refused (503, counted `instance_limit`).
 * An instance stops being live once it has no sockets and no history on this node, and its
 * entry goes with it (so `clients.total` counts again from zero after that, a bounded
 * departure from Aphlict, which kept every name ever seen).
 */
export interface InstanceRegistryOptions {
  /** `limits.maxInstances`. */
  maxInstances: number;
  /** Whether this node keeps history of the instance now (memory history); none with Redis. */
  holdsHistory?: (instance: string) => boolean;
  now?: () => number;
}

interface Entry {
  sockets: number;
  /** Connections ever, while the entry lived (Aphlict's clients.total). */
  total: number;
}

export class InstanceRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private lastSweepAt = -Infinity;

  constructor(private readonly options: InstanceRegistryOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Live instances now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Whether a socket of `instance` may connect: false when that would open an instance past
   * the cap. Asked before the upgrade; socketJoined() follows once it is open.
   */
  canAdmit(instance: string): boolean {
    return this.entries.has(instance) || this.hasRoom();
  }

  /** A socket of `instance` is open (after canAdmit said yes). */
  socketJoined(instance: string): void {
    let entry = this.entries.get(instance);
    if (!entry) this.entries.set(instance, (entry = { sockets: 0, total: 0 }));
    entry.sockets++;
    entry.total++;
  }

  socketLeft(instance: string): void {
    const entry = this.entries.get(instance);
    if (!entry) return;
    entry.sockets = Math.max(0, entry.sockets - 1);
    this.release(instance, entry);
  }

  /**
   * A message for `instance` is about to be stored on this node (memory history): false
   * when that would open an instance past the cap. With shared history a publish keeps no
   * per-instance state here, and is always admitted.
   */
  admitStore(instance: string): boolean {
    if (!this.options.holdsHistory) return true;
    if (this.entries.has(instance)) return true;
    if (!this.hasRoom()) return false;
    this.entries.set(instance, { sockets: 0, total: 0 });
    return true;
  }

  /** Aphlict's `clients.total` for the instance. */
  totalConnections(instance: string): number {
    return this.entries.get(instance)?.total ?? 0;
  }

  /** Names of the live instances. */
  names(): IterableIterator<string> {
    return this.entries.keys();
  }

  /**
   * Room for one more instance. At the cap, entries whose history has aged out since are
   * let go first; that scan runs at most once a second, so refused attempts stay cheap.
   */
  private hasRoom(): boolean {
    if (this.entries.size < this.options.maxInstances) return true;
    const now = this.now();
    if (now - this.lastSweepAt >= 1_000) {
      this.lastSweepAt = now;
      for (const [name, entry] of this.entries) this.release(name, entry);
    }
    return this.entries.size < this.options.maxInstances;
  }

  private release(instance: string, entry: Entry): void {
    if (entry.sockets === 0 && !this.options.holdsHistory?.(instance)) this.entries.delete(instance);
  }
}
