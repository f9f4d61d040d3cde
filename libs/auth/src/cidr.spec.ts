import { isCidr } from '@tidings/protocol';
import { CidrError, canonicalAddress, createAddressMatcher, parseCidr } from './cidr';

describe('cidr', () => {
  const matcher = createAddressMatcher(['10.0.0.0/8', '192.168.1.5', 'fd00::/8', '::ffff:172.16.0.0/108', '2001:db8::1']);

  it.each([
    ['10.1.2.3', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['192.168.1.5', true],
    ['192.168.1.6', false],
    ['fd12:3456::1', true],
    ['fe80::1', false],
    ['2001:db8::1', true],
    ['2001:db8:0:0:0:0:0:1', true],
    ['2001:db8::2', false],
    // IPv4-mapped IPv6, as a dual-stack socket reports an IPv4 peer.
    ['::ffff:10.9.8.7', true],
    ['::ffff:192.168.1.5', true],
    ['::ffff:11.0.0.1', false],
    // A range written IPv4-mapped matches plain IPv4 too.
    ['172.16.3.4', true],
    ['::ffff:172.16.3.4', true],
    ['172.32.0.1', false],
  ])('%s in the list: %s', (address, expected) => {
    expect(matcher.matches(address)).toBe(expected);
  });

  it('matches nothing that is not an address, and nothing with an empty list', () => {
    for (const junk of [undefined, '', 'localhost', '10.0.0', '10.0.0.1/8', '0xa.0.0.1', '10.0.0.1 ', 'fe80::1%eth0']) {
      expect(matcher.matches(junk)).toBe(false);
    }
    const empty = createAddressMatcher([]);
    expect(empty.size).toBe(0);
    expect(empty.matches('10.0.0.1')).toBe(false);
  });

  it('0.0.0.0/0 holds every IPv4 address (mapped ones too) and no IPv6 one; ::/0 the other way round', () => {
    const v4 = createAddressMatcher(['0.0.0.0/0']);
    expect([v4.matches('1.2.3.4'), v4.matches('::ffff:1.2.3.4'), v4.matches('::1')]).toEqual([true, true, false]);
    const v6 = createAddressMatcher(['::/0']);
    expect([v6.matches('::1'), v6.matches('fd00::1'), v6.matches('1.2.3.4')]).toEqual([true, true, false]);
  });

  it('refuses a bad entry with a CidrError naming it, and agrees with the config check on what is an entry', () => {
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'host.example', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1', '0xa.0.0.1', '167772161', 'fe80::1%eth0', '']) {
      expect(isCidr(bad)).toBe(false);
      expect(() => parseCidr(bad)).toThrow(CidrError);
      expect(() => createAddressMatcher(['10.0.0.0/8', bad])).toThrow(bad === '' ? /"" is not/ : bad);
    }
    for (const good of ['10.0.0.1', '10.0.0.0/8', '::1', '::/0', '::ffff:10.0.0.0/104', '::ffff:10.0.0.1']) {
      expect(isCidr(good)).toBe(true);
      expect(() => parseCidr(good)).not.toThrow();
    }
  });

  it('gives one canonical text per address, whatever form it came in', () => {
    expect(canonicalAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalAddress('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalAddress('::1')).toBe('::1');
    expect(canonicalAddress('nonsense')).toBeUndefined();
    expect(canonicalAddress(undefined)).toBeUndefined();
  });
});
