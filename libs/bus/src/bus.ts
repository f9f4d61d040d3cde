/**
 * The bus carries messages between Tidings nodes. Contract only; implementations live in
 * memory-bus.ts (in-process, for tests and one process) and redis-bus.ts.
 *
 * A node publishes each accepted message once; every node, the publisher included, may
 * receive it back. Each node stamps its own id on what it publishes and ignores its own
 * echo; it also drops ids it has already delivered (the gateway's seen-id set), so a socket
 * gets a message once whichever paths carried it.
 */
import type { EventEmitter } from 'node:events';
import type { Envelope } from '@tidings/protocol';

/** An envelope on the bus, stamped with the id of the node that published it. */
export interface BusMessage extends Envelope {
  origin: string;
}

export interface BusEvents {
  /** A message another node published. Own echoes are already dropped. */
  message: [message: BusMessage];
  /** This node's own message coming back (only while `echoes` is on), with its position. */
  echo: [message: BusMessage];
  /** Connected (again): the gateway backfills from shared history what it may have missed. */
  up: [info: { reconnect: boolean; downSince: number | null }];
  /** Lost the connection; publishes fail until `up`. */
  down: [error: Error];
}

export interface Bus extends EventEmitter<BusEvents> {
  /** The id stamped on this node's messages. */
  readonly nodeId: string;
  /** Whether publishes can reach other nodes now. */
  readonly isConnected: boolean;
  /** Emit this node's own messages as `echo` instead of dropping them (positions need them). */
  echoes: boolean;
  /**
   * True when the history store publishes each message as it stores it (RedisBus with
   * RedisHistory): then every message on the bus carries its position, echoes included.
   */
  readonly isPublishedByHistory?: boolean;
  /** Connects and subscribes. Resolves even if the backend is down (it keeps retrying). */
  start(): Promise<void>;
  /** Hands a message to every other node. Rejects when the bus is down or times out. */
  publish(message: Envelope): Promise<void>;
  /**
   * Publishes a canary through the same channel that carries messages and resolves with
   * the milliseconds until this node received it back; rejects after `timeoutMs`. Proves
   * delivery, not just a connection (readiness and the round-trip histogram use it).
   */
  roundTrip(timeoutMs: number): Promise<number>;
  /**
   * Drops and re-establishes the subscription, for a bus that looks connected but has
   * stopped delivering (the canary says so). The `up` that follows has `reconnect: true`
   * and `downSince` no later than `silentSince`, so the gateway backfills the silent period.
   */
  reconnect(reason: string, silentSince: number | null): void;
  /**
   * Interest routing (optional: a broadcast bus carries every message to every node). The
   * node reports when (instance, PHID) gains its first local subscriber and loses its last.
   */
  watch?(instance: string, phid: string): void;
  unwatch?(instance: string, phid: string): void;
  /** Resolves once the interest reported so far routes messages here. */
  settled?(): Promise<void>;
  /** Extra state for /status/ (counters, downSince); optional. */
  describe?(): Record<string, unknown>;
  /** Unsubscribes and closes what it created. Idempotent. */
  close(): Promise<void>;
}
