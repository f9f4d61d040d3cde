export * from './history-store';
export * from './memory-history';
