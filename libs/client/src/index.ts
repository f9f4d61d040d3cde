export { connect, TidingsClient, type ClientOptions, type ClientStats } from './tidings-client';
export { ReconnectPolicy, RECONNECT_DEFAULTS, type ReconnectOptions } from './reconnect-policy';
export { RecentIds } from './recent-ids';
export { aphlictUrl, type WebSocketLike, type WebSocketConstructor } from './aphlict-transport';
export {
  DEFAULT_INSTANCE,
  TidingsAckError,
  type ClientEvents,
  type ClientStatus,
  type SocketIoAck,
  type TidingsMessage,
  type TransportName,
} from './types';
