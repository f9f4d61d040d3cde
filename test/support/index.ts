export * from './redis';
export * from './gateway-process';
export * from './ws-client';
export * from './http';
export * from './tcp-proxy';
export * from './aphlict-peer';
export * from './redis-sentinel';
