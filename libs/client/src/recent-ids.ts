/** The last N message ids seen, for de-duplication by `uniqueID`; the oldest is forgotten first. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly max: number) {
    if (!(max > 0)) throw new Error('RecentIds: max must be positive');
  }

  /** Records the id; false when it was already there (a duplicate). */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.max) {
      // A Set iterates in insertion order: the first is the oldest.
      this.ids.delete(this.ids.values().next().value as string);
    }
    return true;
  }

  get size(): number {
    return this.ids.size;
  }
}
