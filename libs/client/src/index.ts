export { connect, TidingsClient, type ClientOptions, type ClientStats, type TokenProvider } from './tidings-client';
export { ReconnectPolicy, RECONNECT_DEFAULTS, type ReconnectOptions } from './reconnect-policy';
export { RecentIds } from './recent-ids';
export { aphlictUrl, withToken, type WebSocketLike, type WebSocketConstructor } from './aphlict-transport';
export {
  DEFAULT_INSTANCE,
  TOKEN_EXPIRED_CLOSE_CODE,
  TidingsAckError,
  TidingsAuthError,
  type AuthFailure,
  type ClientEvents,
  type ClientStatus,
  type SocketIoAck,
  type TidingsMessage,
  type TransportName,
} from './types';
