import type { Notification } from './message';
import type { Position } from './positions';

/**
 * A message on its way through one node: accepted once, serialised once. `frame` is the
 * exact text every socket receives, every peer is sent and history keeps.
 */
export interface Envelope {
  /** The message's `uniqueID`, or an id the first node assigned; dedupe key with `instance`. */
  id: string;
  instance: string;
  /** Addressed PHIDs (copied from the message so stores need not parse `frame`). */
  subscribers: string[];
  /** JSON of the message, `touched` included. */
  frame: string;
  /** Epoch ms when the first node accepted it. */
  acceptedAt: number;
  /**
   * Fingerprints of the nodes that handled it (copied from the message, this node's
   * included), so a node can honour `touched` on the bus and in a backfill without parsing
   * `frame`. Absent in what nodes older than this field send.
   */
  touched?: string[];
  /** Its place in the instance's history, once history gave it one (positions.ts). */
  position?: Position;
}

/** The HTTP header that carries an assigned message id from one Tidings node to a peer. */
export const MESSAGE_ID_HEADER = 'x-tidings-message-id';

export function envelopeOf(instance: string, id: string, message: Notification, acceptedAt: number): Envelope {
  return { id, instance, subscribers: message.subscribers, frame: JSON.stringify(message), acceptedAt, touched: message.touched };
}
