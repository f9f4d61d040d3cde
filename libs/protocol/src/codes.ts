/** WebSocket close codes Tidings uses, with why. */
export const CloseCode = {
  /** Server shutting down or draining: reconnect elsewhere. */
  GOING_AWAY: 1001,
  /** A frame over the size limit (ws sends this itself for maxPayload). */
  MESSAGE_TOO_BIG: 1009,
  /**
   * The node's bus was down: a socket with positions reconnects and replays from its
   * position (exact, with `recovered`) rather than take a late backfill.
   */
  RESYNC: 1012,
  /** The connection's token expired: get a new one and reconnect. */
  TOKEN_EXPIRED: 4001,
} as const;

/** The body Aphlict's client port answers to plain HTTP; Phorge's setup check reads the 501. */
export const CLIENT_PORT_HTTP_BODY = 'HTTP/501 Use Websockets\n';

/** Aphlict's status `version`; tooling reads it. */
export const APHLICT_STATUS_VERSION = 7;
