export { connect, TidingsClient, type ClientOptions, type ClientStats, type TokenProvider } from './tidings-client';
export { ReconnectPolicy, RECONNECT_DEFAULTS, type ReconnectOptions } from './reconnect-policy';
export { RecentIds } from './recent-ids';
export { PositionTracker, readPosition } from './position-tracker';
export { aphlictUrl, withToken, type WebSocketLike, type WebSocketConstructor } from './aphlict-transport';
export {
  DEFAULT_INSTANCE,
  TOKEN_EXPIRED_CLOSE_CODE,
  TidingsAckError,
  TidingsAuthError,
  TidingsConnectionLostError,
  type AuthFailure,
  type ClientEvents,
  type ClientStatus,
  type Position,
  type SocketIoAck,
  type TidingsMessage,
  type TransportName,
} from './types';
