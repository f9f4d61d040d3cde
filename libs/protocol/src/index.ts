export * from './message';
export * from './frame';
export * from './instance';
export * from './fingerprint';
export * from './codes';
export * from './config';
export * from './logger';
export * from './envelope';
