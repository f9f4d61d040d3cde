import { createClientAddressResolver } from './client-address';

describe('client address', () => {
  const resolver = createClientAddressResolver(['127.0.0.1', '10.0.0.0/8']);
  const resolve = resolver.resolve.bind(resolver);

  it('is the socket address when no proxy is trusted, whatever X-Forwarded-For says', () => {
    const none = createClientAddressResolver([]);
    expect(none.resolve('203.0.113.9', '198.51.100.1')).toBe('203.0.113.9');
    expect(none.resolve('::ffff:203.0.113.9', undefined)).toBe('203.0.113.9');
  });

  it('never believes X-Forwarded-For from an untrusted peer', () => {
    expect(resolve('203.0.113.9', '127.0.0.1')).toBe('203.0.113.9');
    expect(resolve('203.0.113.9', '10.0.0.1, 198.51.100.1')).toBe('203.0.113.9');
  });

  it('takes the hop a trusted proxy saw', () => {
    expect(resolve('127.0.0.1', '198.51.100.1')).toBe('198.51.100.1');
    expect(resolve('::ffff:127.0.0.1', '198.51.100.1')).toBe('198.51.100.1');
  });

  it('walks from the right past further trusted proxies, and stops at the first untrusted hop', () => {
    // The client wrote "6.6.6.6" itself: it is left of the first untrusted hop, so never believed.
    expect(resolve('127.0.0.1', '6.6.6.6, 198.51.100.1, 10.1.1.1, 10.2.2.2')).toBe('198.51.100.1');
    // Several X-Forwarded-For headers read as one list, in order.
    expect(resolve('127.0.0.1', ['6.6.6.6, 198.51.100.1', '10.1.1.1'])).toBe('198.51.100.1');
  });

  it('is the leftmost hop when every hop is a trusted proxy', () => {
    expect(resolve('127.0.0.1', '10.1.1.1, 10.2.2.2')).toBe('10.1.1.1');
  });

  it('reads hops with ports and IPv6 hops, canonically', () => {
    expect(resolve('127.0.0.1', '198.51.100.1:5555')).toBe('198.51.100.1');
    expect(resolve('127.0.0.1', '[2001:db8::7]:443')).toBe('2001:db8::7');
    expect(resolve('127.0.0.1', '2001:DB8:0::7')).toBe('2001:db8::7');
    expect(resolve('127.0.0.1', '::ffff:198.51.100.1')).toBe('198.51.100.1');
  });

  it('stops at a hop that is not an address: the last trusted proxy is what is known', () => {
    expect(resolve('127.0.0.1', 'unknown')).toBe('127.0.0.1');
    expect(resolve('127.0.0.1', '198.51.100.1, garbage, 10.1.1.1')).toBe('10.1.1.1');
    expect(resolve('127.0.0.1', '')).toBe('127.0.0.1');
  });

  it('keeps the socket address when X-Forwarded-For is absent, and undefined when the socket has none', () => {
    expect(resolve('127.0.0.1', undefined)).toBe('127.0.0.1');
    expect(resolve(undefined, '198.51.100.1')).toBeUndefined();
  });

  it('walks at most 32 hops of a long chain of trusted proxies', () => {
    const hops = Array.from({ length: 100 }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    expect(resolve('127.0.0.1', ['198.51.100.1', ...hops].join(','))).toBe(hops[100 - 32]);
  });
});
