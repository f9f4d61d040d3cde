export * from './bus';
export * from './bus-base';
export * from './bus-codec';
export * from './keys';
export * from './redis-bus';
export * from './redis-interest-bus';
// In-process bus for tests of several nodes in one process; production code does not use it.
export * from './memory-bus';
