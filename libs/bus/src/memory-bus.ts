/**
 * An in-process bus: several nodes in one process share one MemoryBusHub, so multi-node
 * behaviour (echo dropping, up/down, backfill) can be tested fast without Redis. Messages
 * travel as the same encoded text RedisBus sends, delivered asynchronously like a network.
 * Nothing in production uses it; it lives in its own file so the gateway never needs it.
 */
import { BusBase, BusError, type BusBaseOptions } from './bus-base';

/** The shared "server" of MemoryBus nodes. */
export class MemoryBusHub {
  private readonly nodes = new Set<MemoryBus>();
  private up = true;

  /** Whether the hub accepts traffic. */
  get isUp(): boolean {
    return this.up;
  }

  /** Simulates losing (false) or regaining (true) the backend: nodes go down/up. */
  setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    for (const node of this.nodes) node.hubChanged(up);
  }

  /** @internal */
  join(node: MemoryBus): void {
    this.nodes.add(node);
  }

  /** @internal */
  leave(node: MemoryBus): void {
    this.nodes.delete(node);
  }

  /** @internal */
  broadcast(text: string): void {
    if (!this.up) throw new BusError('BUS_DOWN', 'memory bus: hub is down');
    for (const node of [...this.nodes]) setImmediate(() => node.receive(text));
  }
}

export interface MemoryBusOptions extends BusBaseOptions {
  hub: MemoryBusHub;
}

export class MemoryBus extends BusBase {
  private readonly hub: MemoryBusHub;
  private state: 'new' | 'running' | 'closed' = 'new';
  private reachable = true;

  constructor(options: MemoryBusOptions) {
    super(options);
    this.hub = options.hub;
  }

  start(): Promise<void> {
    if (this.state !== 'new') return Promise.resolve();
    this.state = 'running';
    this.hub.join(this);
    this.hubChanged(this.hub.isUp);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.state = 'closed';
    this.failCanaries(new BusError('BUS_CLOSED', 'memory bus: closed'));
    this.hub.leave(this);
    return Promise.resolve();
  }

  /** Simulates this node alone losing (false) or regaining (true) its connection. */
  setReachable(reachable: boolean): void {
    this.reachable = reachable;
    this.hubChanged(this.hub.isUp);
  }

  protected send(text: string): Promise<void> {
    if (this.state !== 'running') return Promise.reject(new BusError('BUS_CLOSED', 'memory bus: not running'));
    if (!this.reachable) return Promise.reject(new BusError('BUS_DOWN', 'memory bus: node unreachable'));
    try {
      this.hub.broadcast(text);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** @internal */
  receive(text: string): void {
    if (this.state === 'running' && this.hub.isUp && this.reachable) this.onText(text);
  }

  /** @internal */
  hubChanged(up: boolean): void {
    if (this.state !== 'running') return;
    if (up && this.reachable) this.markUp();
    else this.markDown(new BusError('BUS_DOWN', up ? 'memory bus: node unreachable' : 'memory bus: hub is down'));
  }

  /** Reconnects at once: down, then up again (if the hub and this node are reachable). */
  protected dropConnection(): void {
    queueMicrotask(() => this.hubChanged(this.hub.isUp));
  }

  /** Delivers raw text as if it came from the channel (tests of malformed traffic). */
  inject(text: string): void {
    this.onText(text);
  }
}
