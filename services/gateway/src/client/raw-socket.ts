/**
 * One raw Aphlict WebSocket: decodes its frames, keeps its subscriptions in the hub, and
 * guards the node against it: a reader whose unsent bytes pass the bound is cut off.
 *
 * Containment: every entry point the outside world can reach (a frame, a close, a replay's
 * continuation, a send from the hub's fan-out) runs through `contain()`, so whatever goes
 * wrong while serving this socket closes this socket, logged and counted, and never throws
 * into ws, the hub's loop or the process. Once closed, the socket handles nothing more:
 * frames queued behind a replay are dropped with it.
 */
import WebSocket from 'ws';
import { CloseCode, PONG_FRAME, parseClientFrame, positionsFrame, type Logger } from '@tidings/protocol';
import type { Grant } from '@tidings/auth';
import type { HubMember } from '@tidings/hub';
import type { TidingsNode } from '../node';
import { watchExpiry } from './admission';

const PONG = Buffer.from(PONG_FRAME);

/** The parts of ws's Sender used to write a frame built once for many sockets (not in @types/ws). */
interface FrameSender {
  _state: number;
  sendFrame(list: Buffer[], cb?: () => void): void;
}
const { Sender } = WebSocket as unknown as {
  Sender: { frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[] };
};
/** ws's Sender state when nothing (compression, a blob read) is queued ahead of a write. */
const SENDER_IDLE = 0;

/**
 * The hub hands the same payload Buffer to every recipient of a message in one synchronous
 * loop, so a one-entry cache lets the whole WebSocket frame (header + payload) be built once
 * per message and written to each socket as one buffer: no header allocated per socket and
 * one write(2) instead of a corked writev(2). Engine.io does the same (`wsPreEncodedFrame`).
 */
let framedPayload: Buffer | undefined;
let framed: Buffer[] = [];
function preEncoded(payload: Buffer): Buffer[] {
  if (payload !== framedPayload) {
    framedPayload = payload;
    framed = [Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }))];
  }
  return framed;
}

export interface RawSocketOptions {
  maxBufferedBytes: number;
  /** limits.maxFrameBytes, named in the log line when a frame passes it. */
  maxFrameBytes: number;
  /** What the connection's token allows (PHIDs, expiry); undefined when tokens are off. */
  grant?: Grant;
}

export class RawSocket implements HubMember {
  private closed = false;
  /** Whether this connection asked for positions (`{"command":"positions","data":true}`). */
  positions = false;
  private readonly stopExpiry: () => void;

  constructor(
    readonly instance: string,
    private readonly ws: WebSocket,
    private readonly node: TidingsNode,
    private readonly logger: Logger,
    private readonly options: RawSocketOptions,
  ) {
    ws.on('message', (data, isBinary) => this.contain('frame', () => this.onFrame(data as Buffer, isBinary)));
    ws.on('close', () => this.contain('close', () => this.onClose()));
    ws.on('error', (err) => this.contain('error', () => this.onError(err as Error & { code?: string })));
    // At the token's expiry the connection ends; the client gets a fresh token and reconnects.
    this.stopExpiry = watchExpiry(options.grant, () =>
      this.contain('expiry', () => {
        this.logger.info({ sub: options.grant?.sub }, 'client token expired: socket closed with 4001');
        this.ws.close(CloseCode.TOKEN_EXPIRED, 'token expired');
      }),
    );
  }

  /** ws reports protocol errors here, then closes the socket itself (1009 for a frame over maxPayload). */
  private onError(err: Error & { code?: string }): void {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.node.counters.reject('frame_too_large');
      this.logger.warn(
        { limit: this.options.maxFrameBytes, setting: 'limits.maxFrameBytes', env: 'TIDINGS_LIMITS_MAX_FRAME_BYTES' },
        `frame over limits.maxFrameBytes (${this.options.maxFrameBytes} bytes): socket closed with 1009; raise limits.maxFrameBytes to accept larger frames`,
      );
      return;
    }
    this.logger.debug({ err: err.message, code: err.code }, 'socket error');
  }

  send(frame: Buffer): void {
    this.contain('send', () => this.write(frame));
  }

  private write(frame: Buffer): void {
    const ws = this.ws;
    if (this.closed || ws.readyState !== WebSocket.OPEN) return;
    // perMessageDeflate is off, so the sender is idle unless a write is queued behind state.
    const sender = (ws as unknown as { _sender?: FrameSender })._sender;
    if (sender && sender._state === SENDER_IDLE) {
      sender.sendFrame(preEncoded(frame));
      this.node.counters.rawFastSends++;
    } else {
      // Counted, so a ws upgrade that changed these internals shows as a silent fallback.
      ws.send(frame, { binary: false });
      this.node.counters.rawQueuedSends++;
    }
    if (ws.bufferedAmount > this.options.maxBufferedBytes) {
      // Terminate rather than close: a close frame would queue behind the same backlog.
      this.node.counters.slowReaderCloses++;
      this.logger.warn({ buffered: ws.bufferedAmount }, 'slow reader: unsent bytes over the bound, socket closed');
      this.onClose();
      ws.terminate();
    }
  }

  /**
   * Replay sends many frames at once: past half the slow-reader bound it waits for the TCP
   * socket to drain (or close), so a healthy client on a slow link is not cut off by a
   * large replay. Live delivery never waits; it only applies the bound.
   */
  whenWritable(): Promise<void> | undefined {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount <= this.options.maxBufferedBytes / 2) return undefined;
    const tcp = (ws as unknown as { _socket?: import('node:net').Socket })._socket;
    if (!tcp) return undefined;
    return new Promise<void>((resolve) => {
      const done = () => {
        tcp.off('drain', done);
        ws.off('close', done);
        resolve();
      };
      tcp.on('drain', done);
      ws.on('close', done);
    });
  }

  /** Closes with a code and reason; used at shutdown (1001). */
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  /**
   * Frames are handled in the order they came: while a replay (or a `positions` answer)
   * reads history, later frames wait here (and the socket stops reading), so a pong or an
   * unsubscribe never overtakes the replay, as with Aphlict's synchronous replay.
   */
  private backlog: { data: Buffer; isBinary: boolean }[] | null = null;

  /** Handles a command that reads history: later frames wait until it is done. */
  private inOrder(what: string, work: () => Promise<unknown>): void {
    this.backlog = [];
    this.ws.pause();
    // Neither step can reject: a failure is logged, and the continuation is contained.
    work()
      .catch((err: Error) => this.logger.warn({ err: err.message }, `${what} failed`))
      .then(() => this.contain(what, () => this.afterReplay()));
  }

  /** Turns positions on or off: the answer tells where the instance's history is now. */
  private async setPositions(enabled: boolean): Promise<void> {
    if (enabled !== this.positions) {
      this.positions = enabled;
      this.node.positionsChanged(enabled ? 1 : -1);
    }
    if (!enabled) return;
    const head = await this.node.head(this.instance);
    if (!this.closed) this.send(Buffer.from(positionsFrame(head)));
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (this.backlog) this.backlog.push({ data, isBinary });
    else this.handleFrame(data, isBinary);
  }

  private afterReplay(): void {
    const waiting = this.backlog ?? [];
    this.backlog = null;
    // Cut while the replay ran (reset, drain, slow reader): what waited goes with it.
    if (this.closed) return;
    this.ws.resume();
    while (waiting.length && !this.backlog) {
      const next = waiting.shift()!;
      this.handleFrame(next.data, next.isBinary);
    }
    // Another replay among them: the rest wait behind it.
    if (this.backlog) this.backlog = waiting;
  }

  private handleFrame(data: Buffer, isBinary: boolean): void {
    const frame = parseClientFrame(isBinary ? data.toString('utf8') : data.toString());
    switch (frame.command) {
      case 'subscribe': {
        let phids = frame.phids;
        const grant = this.options.grant;
        if (grant && !grant.allowsAll) {
          const split = grant.filter(phids);
          if (split.refused.length) {
            // Aphlict-style: the rest are subscribed, the socket keeps working.
            this.node.counters.reject('forbidden_phid', split.refused.length);
            this.logger.warn({ sub: grant.sub, refused: split.refused.length, first: split.refused[0].slice(0, 64) }, 'subscribe: PHIDs the token does not cover were ignored');
          }
          phids = split.allowed;
        }
        const { added, refused, refusedByNode } = this.node.hub.subscribe(this, phids);
        if (refused) {
          this.node.counters.reject('subscription_cap');
          this.logger.warn({ refused, held: this.node.hub.subscriptionCount(this) }, 'subscribe: cap reached, PHIDs ignored');
        }
        if (refusedByNode) {
          this.node.counters.reject('node_subscription_cap');
          this.logger.warn(
            { refused: refusedByNode, nodeHeld: this.node.subscriptions.held, setting: 'limits.maxSubscriptionsPerNode' },
            'subscribe: the node holds limits.maxSubscriptionsPerNode subscriptions, PHIDs ignored',
          );
        }
        // With interest routing, later frames (the client's ping) wait until the new
        // subscriptions route messages here: a pong then means "subscribed".
        const routed = added > 0 ? this.node.routed() : undefined;
        if (routed) this.inOrder('subscribe', () => routed);
        return;
      }
      case 'unsubscribe':
        this.node.hub.unsubscribe(this, frame.phids);
        return;
      case 'replay':
        this.inOrder('replay', () => this.node.replay(this, { kind: 'age', ageMs: frame.ageMs }));
        return;
      case 'replay-since':
        this.inOrder('replay', () => this.node.replay(this, { kind: 'since', since: frame.since }));
        return;
      case 'positions':
        this.inOrder('positions', () => this.setPositions(frame.enabled));
        return;
      case 'ping':
        if (this.ws.readyState === WebSocket.OPEN) this.ws.send(PONG, { binary: false });
        return;
      case 'ignored':
        this.node.counters.reject('bad_frame');
        this.logger.debug({ reason: frame.reason }, 'frame ignored');
        return;
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopExpiry();
    if (this.positions) this.node.positionsChanged(-1);
    this.backlog = null;
    this.node.hub.remove(this);
  }

  /**
   * Runs one of this socket's handlers. A throw is a defect in serving this socket, not a
   * reason to stop serving the others: the socket is cut off, the event logged and counted.
   */
  private contain(during: string, handler: () => void): void {
    try {
      handler();
    } catch (err) {
      const e = err as Error;
      this.node.counters.internalError('raw_socket');
      this.logger.error({ err: e.message, stack: e.stack, during }, 'socket handler failed; socket closed');
      try {
        this.onClose();
      } finally {
        this.ws.terminate();
      }
    }
  }
}

