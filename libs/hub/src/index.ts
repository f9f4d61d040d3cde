export * from './hub';
export * from './subscription-budget';
