export * from './gateway';
export * from './node';
export * from './config';
export * from './logging';
export * from './message-ledger';
export { createCollaborators } from './wiring';
