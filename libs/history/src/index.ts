export * from './history-store';
export * from './memory-history';
export * from './redis-history';
