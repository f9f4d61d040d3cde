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
import { PONG_FRAME, parseClientFrame, type Logger } from '@tidings/protocol';
import type { HubMember } from '@tidings/hub';
import type { TidingsNode } from '../node';

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
}

export class RawSocket implements HubMember {
  private closed = false;

  constructor(
    readonly instance: string,
    private readonly ws: WebSocket,
    private readonly node: TidingsNode,
    private readonly logger: Logger,
    private readonly options: RawSocketOptions,
  ) {
    ws.on('message', (data, isBinary) => this.contain('frame', () => this.onFrame(data as Buffer, isBinary)));
    ws.on('close', () => this.contain('close', () => this.onClose()));
    ws.on('error', (err) => this.logger.debug({ err: err.message }, 'socket error'));
  }

  /** Whether the socket has closed (or was cut off): it takes and sends nothing more. */
  get isClosed(): boolean {
    return this.closed;
  }

  send(frame: Buffer): void {
    this.contain('send', () => this.write(frame));
  }

  private write(frame: Buffer): void {
    const ws = this.ws;
    if (this.closed || ws.readyState !== WebSocket.OPEN) return;
    // perMessageDeflate is off, so the sender is idle unless a write is queued behind state.
    const sender = (ws as unknown as { _sender?: FrameSender })._sender;
    if (sender && sender._state === SENDER_IDLE) sender.sendFrame(preEncoded(frame));
    else ws.send(frame, { binary: false });
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
   * Frames are handled in the order they came: while a replay reads history, later frames
   * wait here (and the socket stops reading), so a pong or an unsubscribe never overtakes
   * the replay, as with Aphlict's synchronous replay.
   */
  private backlog: { data: Buffer; isBinary: boolean }[] | null = null;

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
        const { refused } = this.node.hub.subscribe(this, frame.phids);
        if (refused) {
          this.node.counters.reject('subscription_cap');
          this.logger.warn({ refused, held: this.node.hub.subscriptionCount(this) }, 'subscribe: cap reached, PHIDs ignored');
        }
        return;
      }
      case 'unsubscribe':
        this.node.hub.unsubscribe(this, frame.phids);
        return;
      case 'replay':
        this.backlog = [];
        this.ws.pause();
        // Neither step can reject: a failed read is logged, and the continuation is contained.
        this.node
          .replay(this, frame.ageMs)
          .catch((err: Error) => this.logger.warn({ err: err.message }, 'replay failed'))
          .then(() => this.contain('replay', () => this.afterReplay()));
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

