/**
 * What counts as an address range in the config (`auth.adminAllow`, `limits.trustProxy`):
 * one rule, here, so the config check and @tidings/auth's matcher never disagree.
 */
import ipaddr from 'ipaddr.js';

/**
 * True for an IPv4 or IPv6 address, alone or with a prefix length: `10.0.0.1`,
 * `10.0.0.0/8`, `fd00::/8`, `::ffff:10.0.0.0/104`. IPv4 must be four decimal parts
 * (ipaddr.js would also take `0xa.1` or `167772161`, which nobody means in an allow-list),
 * and IPv6 zone ids (`fe80::1%eth0`) are refused: a socket's remote address has none to match.
 */
export function isCidr(text: string): boolean {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  let maxBits: number;
  if (ipaddr.IPv4.isValidFourPartDecimal(address)) maxBits = 32;
  else if (!address.includes('%') && ipaddr.IPv6.isValid(address)) maxBits = 128;
  else return false;
  if (slash === -1) return true;
  const bits = text.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= maxBits;
}
