/**
 * The local index from (instance, PHID) to this node's sockets. Delivery looks up only the
 * addressed PHIDs, so its cost follows recipients, not connections. Plain Map and Set:
 * PHIDs such as `constructor` or `__proto__` are ordinary keys (an Aphlict defect).
 *
 * Memory is the constraint here (a node may hold millions of subscriptions; see
 * bench/subscriptions.mjs), so the index is shaped after what it holds:
 * - Most PHIDs (a user's own) have one subscriber per node: the index maps such a PHID to
 *   the member itself, and only a second subscriber turns the entry into a Set. A one-element
 *   Set cost ~150 bytes per subscription.
 * - A member's own list of PHIDs is an array, only read to undo its subscriptions when it
 *   leaves: the index answers "is it subscribed?". Unsubscribing leaves stale entries in the
 *   array, dropped once they outnumber the live ones (amortised O(1)).
 * - Subscribers after the first store the PHID string their Set holds, not their own copy
 *   of it, so a PHID shared by many sockets is kept twice, not once per socket.
 */
import { EventEmitter } from 'node:events';
import { SubscriptionBudget } from './subscription-budget';

/**
 * Something the hub can hand a frame to. The frame is encoded once per message (UTF-8
 * bytes of its JSON) and the same Buffer goes to every recipient (raw-socket.ts relies on
 * that identity to build the WebSocket frame once).
 */
export interface HubMember {
  readonly instance: string;
  /** Whether it asked for positions: it is then sent the positioned frame of a message. */
  readonly positions?: boolean;
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
  /** Subscriptions the whole node may hold, shared with other transports; default: no bound. */
  budget?: SubscriptionBudget;
}

export interface DeliverOptions {
  /** The frame for members that asked for positions (the message with its position). */
  positioned?: string;
  /** Only members that asked for positions, or only those that did not. */
  only?: 'plain' | 'positioned';
}

export interface SubscribeResult {
  added: number;
  /** PHIDs refused because the member reached its cap. */
  refused: number;
  /** PHIDs refused because the node holds as many subscriptions as its budget allows. */
  refusedByNode: number;
}

/**
 * The members of one (instance, PHID) once there are two or more. `phid` is the string that
 * later subscribers keep in their own lists, so that equal strings are not stored per socket.
 */
class MemberSet<M> extends Set<M> {
  constructor(readonly phid: string) {
    super();
  }
}

/** An index entry: the lone member, or the set of them. Never empty. */
type Entry<M> = M | MemberSet<M>;

function isSet<M>(entry: Entry<M>): entry is MemberSet<M> {
  return entry instanceof MemberSet;
}

function holds<M>(entry: Entry<M> | undefined, member: M): boolean {
  return entry === member || (entry !== undefined && isSet(entry) && entry.has(member));
}

/** A member's subscriptions. */
interface Held {
  /** PHIDs subscribed, oldest first; may also hold PHIDs unsubscribed since, and repeats. */
  phids: string[];
  /** PHIDs held now (the index is the truth). */
  count: number;
}

/** Stale list entries tolerated beyond the live ones before the list is compacted. */
const STALE_SLACK = 32;

export class Hub<M extends HubMember = HubMember> extends EventEmitter<HubEvents> {
  private readonly index = new Map<string, Map<string, Entry<M>>>();
  private readonly members = new Map<M, Held>();
  private readonly perInstance = new Map<string, number>();
  private readonly maxSubscriptions: number;
  private readonly budget: SubscriptionBudget;

  constructor(options: HubOptions = {}) {
    super();
    this.maxSubscriptions = options.maxSubscriptionsPerMember ?? 10_000;
    this.budget = options.budget ?? new SubscriptionBudget(0);
  }

  add(member: M): void {
    if (this.members.has(member)) return;
    this.members.set(member, { phids: [], count: 0 });
    this.perInstance.set(member.instance, (this.perInstance.get(member.instance) ?? 0) + 1);
  }

  remove(member: M): void {
    const held = this.members.get(member);
    if (!held) return;
    const byPhid = this.index.get(member.instance);
    if (byPhid) {
      // Stale entries and repeats are skipped by detach(): the index is the truth.
      for (const phid of held.phids) this.detach(byPhid, member, held, phid);
      if (!byPhid.size) this.index.delete(member.instance);
    }
    this.members.delete(member);
    const left = (this.perInstance.get(member.instance) ?? 1) - 1;
    if (left) this.perInstance.set(member.instance, left);
    else this.perInstance.delete(member.instance);
  }

  subscribe(member: M, phids: Iterable<string>): SubscribeResult {
    const held = this.members.get(member);
    if (!held) throw new Error('hub: subscribe() of a member that was not added');
    let byPhid = this.index.get(member.instance);
    if (!byPhid) this.index.set(member.instance, (byPhid = new Map()));
    let added = 0;
    let refused = 0;
    let refusedByNode = 0;
    for (const phid of phids) {
      const entry = byPhid.get(phid);
      if (holds(entry, member)) continue;
      if (held.count >= this.maxSubscriptions) {
        refused++;
        continue;
      }
      if (!this.budget.take()) {
        refusedByNode++;
        continue;
      }
      held.count++;
      added++;
      if (entry === undefined) {
        byPhid.set(phid, member);
        held.phids.push(phid);
        this.emit('first-subscriber', member.instance, phid);
      } else if (isSet(entry)) {
        entry.add(member);
        held.phids.push(entry.phid);
      } else {
        // A second subscriber: the lone member becomes a set.
        const set = new MemberSet<M>(phid);
        set.add(entry);
        set.add(member);
        byPhid.set(phid, set);
        held.phids.push(phid);
      }
    }
    return { added, refused, refusedByNode };
  }

  unsubscribe(member: M, phids: Iterable<string>): number {
    const held = this.members.get(member);
    const byPhid = this.index.get(member.instance);
    if (!held || !byPhid) return 0;
    let removed = 0;
    for (const phid of phids) if (this.detach(byPhid, member, held, phid)) removed++;
    if (!byPhid.size) this.index.delete(member.instance);
    if (held.phids.length > 2 * held.count + STALE_SLACK) this.compact(byPhid, member, held);
    return removed;
  }

  /** Whether a member is subscribed to any of the PHIDs (replay filters history with it). */
  isSubscribedToAny(member: M, phids: readonly string[]): boolean {
    if (!this.members.get(member)?.count) return false;
    const byPhid = this.index.get(member.instance);
    if (!byPhid) return false;
    for (const phid of phids) if (holds(byPhid.get(phid), member)) return true;
    return false;
  }

  /** The members of an instance subscribed to any of the PHIDs, each once. */
  recipients(instance: string, phids: readonly string[]): Set<M> | readonly M[] {
    const found = this.match(instance, phids);
    if (found === undefined) return EMPTY;
    return found instanceof Set ? found : [found];
  }

  /**
   * Sends the frame to every matching member once; returns how many were sent to. The JSON
   * text is encoded to bytes once, and only when someone matches: a node with no recipient
   * for a message pays for the lookups alone. Members that asked for positions get
   * `options.positioned` instead (encoded once too, when given); `options.only` restricts
   * the delivery to one kind of member.
   */
  deliver(instance: string, phids: readonly string[], json: string, options?: DeliverOptions): number {
    const found = this.match(instance, phids);
    if (found === undefined) return 0;
    if (!options) {
      const frame = Buffer.from(json);
      if (!(found instanceof Set)) {
        found.send(frame);
        return 1;
      }
      let sent = 0;
      // Copy a live index set: a send may close a slow socket and remove it (a union is ours).
      for (const member of found instanceof MemberSet ? [...found] : found) {
        member.send(frame);
        sent++;
      }
      return sent;
    }
    let plain: Buffer | undefined;
    let positioned: Buffer | undefined;
    let sent = 0;
    for (const member of found instanceof Set ? (found instanceof MemberSet ? [...found] : found) : [found]) {
      const wants = member.positions === true;
      if (options.only === 'plain' ? wants : options.only === 'positioned' ? !wants : false) continue;
      if (wants && options.positioned !== undefined) member.send((positioned ??= Buffer.from(options.positioned)));
      else member.send((plain ??= Buffer.from(json)));
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
    return instance === undefined ? this.members.size : (this.perInstance.get(instance) ?? 0);
  }

  subscriptionCount(member: M): number {
    return this.members.get(member)?.count ?? 0;
  }

  /**
   * The members subscribed to any of the PHIDs: undefined (none), one member, a live index
   * set (all matches in one entry) or a new union set.
   */
  private match(instance: string, phids: readonly string[]): M | Set<M> | undefined {
    const byPhid = this.index.get(instance);
    if (!byPhid) return undefined;
    let only: Entry<M> | undefined;
    let union: Set<M> | undefined;
    for (const phid of phids) {
      const entry = byPhid.get(phid);
      if (entry === undefined || entry === only) continue;
      if (only === undefined) {
        only = entry;
        continue;
      }
      // A second matching entry: only now pay for a union.
      if (!union) union = isSet(only) ? new Set(only) : new Set([only]);
      if (isSet(entry)) for (const m of entry) union.add(m);
      else union.add(entry);
    }
    return union ?? only;
  }

  /** Takes a member off one PHID; false when it did not hold it. */
  private detach(byPhid: Map<string, Entry<M>>, member: M, held: Held, phid: string): boolean {
    const entry = byPhid.get(phid);
    if (entry === member) {
      byPhid.delete(phid);
      held.count--;
      this.budget.release();
      this.emit('last-unsubscribed', member.instance, phid);
      return true;
    }
    if (entry === undefined || !isSet(entry) || !entry.delete(member)) return false;
    held.count--;
    this.budget.release();
    // Back to a lone member (a set is never left with fewer than two).
    if (entry.size === 1) byPhid.set(phid, entry.values().next().value as M);
    return true;
  }

  /** Drops stale entries and repeats from a member's list. */
  private compact(byPhid: Map<string, Entry<M>>, member: M, held: Held): void {
    const kept = new Set<string>();
    for (const phid of held.phids) if (!kept.has(phid) && holds(byPhid.get(phid), member)) kept.add(phid);
    held.phids = [...kept];
  }
}

const EMPTY: readonly never[] = Object.freeze([]);
