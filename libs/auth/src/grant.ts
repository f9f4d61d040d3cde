/**
 * What a verified client token lets its connection do: subscribe to the PHIDs it lists.
 * An entry ending in `*` is a prefix (`PHID-PROJ-*`); `*` alone allows every PHID. Built
 * for thousands of entries: exact PHIDs in a Set, prefixes in a Set looked up once per
 * distinct prefix length (PHID prefixes share a handful of lengths), so a check costs a
 * few hash lookups whatever the token holds.
 */

export interface Grant {
  /** The token's `sub`, for logs. */
  readonly sub?: string;
  /** The token's `instance`, when it names one (it then equals the connection's). */
  readonly instance?: string;
  /** When the token expires, in ms since the epoch; the connection is closed then. */
  readonly expiresAt: number;
  /** True when the token holds `*`: every PHID. */
  readonly allowsAll: boolean;
  allows(phid: string): boolean;
  /** Splits a subscribe request into the PHIDs this grant covers and the rest, each in order. */
  filter(phids: readonly string[]): { allowed: string[]; refused: string[] };
}

export interface GrantClaims {
  sub?: string;
  instance?: string;
  expiresAt: number;
  /** The `phids` claim as checked by checkPhidEntries. */
  phids: readonly string[];
}

export interface PhidEntryLimits {
  /** Most entries a token may list. */
  maxPhids: number;
  /** Longest entry, in characters. */
  maxPhidLength: number;
}

export const DEFAULT_PHID_ENTRY_LIMITS: PhidEntryLimits = { maxPhids: 1_000, maxPhidLength: 256 };

/**
 * Why a `phids` claim is unusable, or undefined when it is fine: a list of non-empty
 * strings within the limits, each with `*` at most once and only at its end.
 */
export function checkPhidEntries(value: unknown, limits: PhidEntryLimits = DEFAULT_PHID_ENTRY_LIMITS): string | undefined {
  if (!Array.isArray(value)) return 'the "phids" claim must be a list of PHIDs';
  if (value.length > limits.maxPhids) return `the "phids" claim lists more than ${limits.maxPhids} entries`;
  for (let i = 0; i < value.length; i++) {
    const entry: unknown = value[i];
    if (typeof entry !== 'string' || entry === '') return `"phids"[${i}] must be a non-empty string`;
    if (entry.length > limits.maxPhidLength) return `"phids"[${i}] is longer than ${limits.maxPhidLength} characters`;
    const star = entry.indexOf('*');
    if (star !== -1 && star !== entry.length - 1) return `"phids"[${i}] may hold "*" only at its end (a prefix)`;
  }
  return undefined;
}

class PhidGrant implements Grant {
  readonly sub?: string;
  readonly instance?: string;
  readonly expiresAt: number;
  readonly allowsAll: boolean;
  private readonly exact = new Set<string>();
  private readonly prefixes = new Set<string>();
  /** Distinct prefix lengths, shortest first. */
  private readonly prefixLengths: number[];

  constructor(claims: GrantClaims) {
    if (claims.sub !== undefined) this.sub = claims.sub;
    if (claims.instance !== undefined) this.instance = claims.instance;
    this.expiresAt = claims.expiresAt;
    for (const entry of claims.phids) {
      if (entry.endsWith('*')) this.prefixes.add(entry.slice(0, -1));
      else this.exact.add(entry);
    }
    this.allowsAll = this.prefixes.has('');
    this.prefixLengths = [...new Set([...this.prefixes].map((p) => p.length))].sort((a, b) => a - b);
  }

  allows(phid: string): boolean {
    if (this.allowsAll || this.exact.has(phid)) return true;
    for (const length of this.prefixLengths) {
      if (length > phid.length) break;
      if (this.prefixes.has(phid.slice(0, length))) return true;
    }
    return false;
  }

  filter(phids: readonly string[]): { allowed: string[]; refused: string[] } {
    const allowed: string[] = [];
    const refused: string[] = [];
    for (const phid of phids) (this.allows(phid) ? allowed : refused).push(phid);
    return { allowed, refused };
  }
}

/** A grant from checked claims (see checkPhidEntries). */
export function createGrant(claims: GrantClaims): Grant {
  return new PhidGrant(claims);
}
