/**
 * The subscriptions one node may hold over all its sockets and transports
 * (`limits.maxSubscriptionsPerNode`). The per-socket cap bounds one socket; this bounds how
 * much memory all of them can take together. Shared by the raw-socket hub and Socket.IO.
 */
export class SubscriptionBudget {
  private used = 0;

  /** `limit`: subscriptions allowed in all; 0 means no limit. */
  constructor(readonly limit: number) {}

  get held(): number {
    return this.used;
  }

  /** Takes one subscription; false when the node holds its limit already. */
  take(): boolean {
    if (this.limit > 0 && this.used >= this.limit) return false;
    this.used++;
    return true;
  }

  /** Gives back `count` subscriptions (unsubscribed, or their socket left). */
  release(count = 1): void {
    this.used = Math.max(0, this.used - count);
  }
}
