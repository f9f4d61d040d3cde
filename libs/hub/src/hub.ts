/**
 * The local index from (instance, PHID) to this node's sockets. Delivery looks up only the
 * addressed PHIDs, so its cost follows recipients, not connections. Plain Map and Set:
 * PHIDs such as `constructor` or `__proto__` are ordinary keys (an Aphlict defect).
 */
import { EventEmitter } from 'node:events';

/**
 * Something the hub can hand a frame to. The frame is encoded once per message (UTF-8
 * bytes of its JSON) and the same Buffer goes to every recipient (raw-socket.ts relies on
 * that identity to build the WebSocket frame once).
 */
export interface HubMember {
  readonly instance: string;
  send(frame: Buffer): void;
  /**
   * For bulk sends (replay): a promise that settles once the member's backlog has drained
   * enough to take more, or undefined when it can take more now.
   */
  whenWritable?(): Promise<void> | undefined;
}

export interface HubEvents {
  /** The first member of an instance subscribed to a PHID (a bus may subscribe lazily). */
  'first-subscriber': [instance: string, phid: string];
  /** The last member subscribed to a PHID left it. */
  'last-unsubscribed': [instance: string, phid: string];
}

export interface HubOptions {
  /** Subscriptions one member may hold; further PHIDs are refused. Default 10,000. */
  maxSubscriptionsPerMember?: number;
}

export interface SubscribeResult {
  added: number;
  /** PHIDs refused because the member reached its cap. */
  refused: number;
}

export class Hub<M extends HubMember = HubMember> extends EventEmitter<HubEvents> {
  private readonly index = new Map<string, Map<string, Set<M>>>();
  private readonly subscriptions = new Map<M, Set<string>>();
  private readonly perInstance = new Map<string, number>();
  private readonly maxSubscriptions: number;

  constructor(options: HubOptions = {}) {
    super();
    this.maxSubscriptions = options.maxSubscriptionsPerMember ?? 10_000;
  }

  add(member: M): void {
    if (this.subscriptions.has(member)) return;
    this.subscriptions.set(member, new Set());
    this.perInstance.set(member.instance, (this.perInstance.get(member.instance) ?? 0) + 1);
  }

  remove(member: M): void {
    const phids = this.subscriptions.get(member);
    if (!phids) return;
    this.unsubscribe(member, phids);
    this.subscriptions.delete(member);
    const left = (this.perInstance.get(member.instance) ?? 1) - 1;
    if (left) this.perInstance.set(member.instance, left);
    else this.perInstance.delete(member.instance);
  }

  subscribe(member: M, phids: Iterable<string>): SubscribeResult {
    const mine = this.subscriptions.get(member);
    if (!mine) throw new Error('hub: subscribe() of a member that was not added');
    let byPhid = this.index.get(member.instance);
    if (!byPhid) this.index.set(member.instance, (byPhid = new Map()));
    let added = 0;
    let refused = 0;
    for (const phid of phids) {
      if (mine.has(phid)) continue;
      if (mine.size >= this.maxSubscriptions) {
        refused++;
        continue;
      }
      mine.add(phid);
      added++;
      let members = byPhid.get(phid);
      if (!members) {
        byPhid.set(phid, (members = new Set()));
        this.emit('first-subscriber', member.instance, phid);
      }
      members.add(member);
    }
    return { added, refused };
  }

  unsubscribe(member: M, phids: Iterable<string>): number {
    const mine = this.subscriptions.get(member);
    const byPhid = this.index.get(member.instance);
    if (!mine || !byPhid) return 0;
    let removed = 0;
    for (const phid of [...phids]) {
      if (!mine.delete(phid)) continue;
      removed++;
      const members = byPhid.get(phid);
      if (!members) continue;
      members.delete(member);
      if (!members.size) {
        byPhid.delete(phid);
        this.emit('last-unsubscribed', member.instance, phid);
      }
    }
    if (!byPhid.size) this.index.delete(member.instance);
    return removed;
  }

  /** Whether a member is subscribed to any of the PHIDs (replay filters history with it). */
  isSubscribedToAny(member: M, phids: readonly string[]): boolean {
    const mine = this.subscriptions.get(member);
    if (!mine || !mine.size) return false;
    for (const phid of phids) if (mine.has(phid)) return true;
    return false;
  }

  /** The members of an instance subscribed to any of the PHIDs, each once. */
  recipients(instance: string, phids: readonly string[]): Set<M> | readonly M[] {
    const byPhid = this.index.get(instance);
    if (!byPhid) return EMPTY;
    let only: Set<M> | undefined;
    let union: Set<M> | undefined;
    for (const phid of phids) {
      const members = byPhid.get(phid);
      if (!members) continue;
      if (!only) {
        only = members;
      } else {
        // A second matching PHID: only now pay for a union.
        if (!union) union = new Set(only);
        for (const m of members) union.add(m);
      }
    }
    return union ?? only ?? EMPTY;
  }

  /**
   * Sends the frame to every matching member once; returns how many were sent to. The JSON
   * text is encoded to bytes once, and only when someone matches: a node with no recipient
   * for a message pays for the lookups alone.
   */
  deliver(instance: string, phids: readonly string[], json: string): number {
    const recipients = this.recipients(instance, phids);
    if (recipients instanceof Set ? recipients.size === 0 : recipients.length === 0) return 0;
    const frame = Buffer.from(json);
    let sent = 0;
    // Copy when iterating a live index set: a send may close a slow socket and remove it.
    for (const member of recipients instanceof Set ? [...recipients] : recipients) {
      member.send(frame);
      sent++;
    }
    return sent;
  }

  /** Instances that have members now. */
  instances(): string[] {
    return [...this.perInstance.keys()];
  }

  /** Members connected for an instance. */
  memberCount(instance?: string): number {
    return instance === undefined ? this.subscriptions.size : (this.perInstance.get(instance) ?? 0);
  }

  subscriptionCount(member: M): number {
    return this.subscriptions.get(member)?.size ?? 0;
  }
}

const EMPTY: readonly never[] = Object.freeze([]);
