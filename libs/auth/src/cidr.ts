/**
 * Address ranges (`auth.adminAllow`, `limits.trustProxy`) and the addresses matched against
 * them, through ipaddr.js. An IPv4 address that arrives IPv4-mapped (`::ffff:10.0.0.1`, as a
 * dual-stack socket reports IPv4 peers) is the same address as `10.0.0.1`, and a range
 * written either way matches it.
 */
import ipaddr from 'ipaddr.js';
import { isCidr } from '@tidings/protocol';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** A range: an address and how many leading bits must match. */
export type AddressRange = readonly [Address, number];

export class CidrError extends Error {
  override name = 'CidrError';
}

/** An address as one canonical kind: IPv4-mapped IPv6 becomes IPv4; undefined when it is not an address. */
export function parseAddress(text: string | undefined): Address | undefined {
  if (text === undefined || !(ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text))) return undefined;
  return ipaddr.process(text);
}

/**
 * The canonical text of an address (`::ffff:10.0.0.1` -> `10.0.0.1`, IPv6 as RFC 5952), so
 * one client is one key whatever form its address came in; undefined when it is not one.
 */
export function canonicalAddress(text: string | undefined): string | undefined {
  const address = parseAddress(text);
  if (!address) return undefined;
  return address.kind() === 'ipv6' ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a single address (all bits). Throws CidrError. */
export function parseCidr(text: string): AddressRange {
  if (!isCidr(text)) throw new CidrError(`"${text}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8)`);
  const slash = text.indexOf('/');
  const address = ipaddr.parse(slash === -1 ? text : text.slice(0, slash));
  const bits = slash === -1 ? (address.kind() === 'ipv4' ? 32 : 128) : Number(text.slice(slash + 1));
  // ::ffff:10.0.0.0/104 is 10.0.0.0/8: match it against addresses as parseAddress gives them.
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return [address, bits];
}

/** Whether an address falls in any range of a list. */
export interface AddressMatcher {
  /** How many ranges the list holds; 0 matches nothing. */
  readonly size: number;
  /** False for anything that is not an address (undefined, a host name, garbage). */
  matches(address: string | undefined): boolean;
}

/** Builds a matcher from a list of ranges (as the config holds them). Throws CidrError naming a bad entry. */
export function createAddressMatcher(list: readonly string[]): AddressMatcher {
  const ranges = list.map(parseCidr);
  return {
    size: ranges.length,
    matches(text) {
      if (ranges.length === 0) return false;
      const address = parseAddress(text);
      if (!address) return false;
      // ipaddr.js throws when kinds differ: an IPv4 range never holds an IPv6 address.
      return ranges.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
    },
  };
}
