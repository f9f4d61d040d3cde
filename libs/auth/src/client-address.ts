/**
 * The address a client connects from, when proxies may stand between it and us. Only a
 * peer listed in `limits.trustProxy` is believed about X-Forwarded-For, and the header is
 * walked from the right (the hop our trusted proxy saw) leftwards past further trusted
 * proxies: the first untrusted hop is the client. Entries left of it were written by the
 * client itself and are never believed (proxy-addr's rule, as Express's `trust proxy`).
 */
import { canonicalAddress, createAddressMatcher } from './cidr';

/** Most hops walked in one header; a longer chain is cut at the oldest hop reached. */
const MAX_HOPS = 32;

export interface ClientAddressResolver {
  /**
   * The client's address (canonical: `::ffff:10.0.0.1` reads `10.0.0.1`), given the
   * socket's remote address and the request's X-Forwarded-For (one header or several);
   * undefined only when the socket has no remote address (it already closed).
   */
  resolve(remoteAddress: string | undefined, forwardedFor: string | readonly string[] | undefined): string | undefined;
}

/** An X-Forwarded-For entry, with the port some proxies add (`1.2.3.4:5678`, `[::1]:80`) removed. */
function hopAddress(entry: string): string | undefined {
  const text = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) return canonicalAddress(bracketed[1]);
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(text);
  return canonicalAddress(v4WithPort ? v4WithPort[1] : text);
}

/** `trustProxy`: addresses or CIDR ranges of the proxies in front of this node (empty: none). Throws CidrError. */
export function createClientAddressResolver(trustProxy: readonly string[]): ClientAddressResolver {
  const trusted = createAddressMatcher(trustProxy);
  return {
    resolve(remoteAddress, forwardedFor) {
      const remote = canonicalAddress(remoteAddress) ?? remoteAddress;
      if (remote === undefined || forwardedFor === undefined || !trusted.matches(remote)) return remote;
      const hops = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',')).split(',');
      let client = remote;
      for (let i = hops.length - 1, walked = 0; i >= 0 && walked < MAX_HOPS; i--, walked++) {
        const hop = hopAddress(hops[i]);
        // A hop that is no address is where the chain stops making sense: the last
        // trusted proxy is the best we know.
        if (hop === undefined) return client;
        client = hop;
        if (!trusted.matches(hop)) return hop;
      }
      return client;
    },
  };
}
