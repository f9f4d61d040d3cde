import { randomInt, randomBytes } from 'node:crypto';

/** Aphlict's fingerprint alphabet: 55 characters, no look-alikes (0/O, 1/l/I, i, o). */
const ALPHABET = '23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ';

/** A node's random fingerprint, as Aphlict makes them: 16 characters from ALPHABET. */
export function createFingerprint(length = 16): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

/** A message id for messages that arrive without a `uniqueID`. */
export function createMessageId(): string {
  return randomBytes(16).toString('hex');
}
