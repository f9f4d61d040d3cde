export * from './relay';
export * from './peer';
export * from './peer-relay';
