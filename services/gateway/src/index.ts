export * from './gateway';
export * from './node';
export * from './config';
export * from './logging';
export * from './seen-ids';
export { createCollaborators } from './wiring';
