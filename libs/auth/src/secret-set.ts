/**
 * Which of several secrets a candidate is, in time that tells an attacker nothing: not
 * how many leading characters were right, not how long the secrets are, not which one
 * matched. Both sides are hashed with SHA-256 first, so every comparison is of two 32-byte
 * digests (timingSafeEqual refuses buffers of different lengths, and comparing raw tokens
 * would leak their length), and every configured secret is compared, without an early exit.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class SecretSet {
  private readonly digests: readonly Buffer[];

  constructor(secrets: readonly string[]) {
    this.digests = secrets.map(digest);
  }

  /** How many secrets the set holds. */
  get size(): number {
    return this.digests.length;
  }

  /** The index of the secret equal to `candidate`, or -1. */
  indexOf(candidate: string): number {
    const given = digest(candidate);
    let found = -1;
    for (let i = 0; i < this.digests.length; i++) {
      // Bitwise, so the loop does the same work whether or not an earlier secret matched.
      const equal = timingSafeEqual(given, this.digests[i]);
      found = found === -1 && equal ? i : found;
    }
    return found;
  }
}
