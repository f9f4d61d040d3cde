/** cluster-key-slot (ioredis's own dependency) ships no types: the hash slot of a key, 0-16383. */
declare module 'cluster-key-slot' {
  export default function calculateSlot(key: string): number;
}
