import { bearerToken } from './bearer';
import { redactToken, tokenFromSocketIoAuth, tokenFromUpgrade } from './upgrade-token';

describe('bearerToken', () => {
  it('reads "Bearer TOKEN" with any case of the scheme', () => {
    expect(bearerToken('Bearer abc.def-ghi')).toBe('abc.def-ghi');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('BEARER   abc  ')).toBe('abc');
  });

  it('gives nothing for other schemes, empty tokens, tokens with spaces or repeated headers', () => {
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearerabc', 'Bearer a b', 'Token abc']) {
      expect(bearerToken(header)).toBeUndefined();
    }
    expect(bearerToken(['Bearer a', 'Bearer b'])).toBeUndefined();
  });
});

describe('tokenFromUpgrade', () => {
  it('takes ?token= from the WebSocket URL', () => {
    expect(tokenFromUpgrade('/~acme/?token=abc.def.ghi', {})).toBe('abc.def.ghi');
    expect(tokenFromUpgrade('/ws/~acme/?x=1&token=abc%2Edef', {})).toBe('abc.def');
  });

  it('prefers the Authorization header over the query', () => {
    expect(tokenFromUpgrade('/?token=from-query', { authorization: 'Bearer from-header' })).toBe('from-header');
    expect(tokenFromUpgrade('/?token=from-query', { authorization: 'Basic x' })).toBe('from-query');
  });

  it('gives nothing without a token', () => {
    expect(tokenFromUpgrade('/~acme/', {})).toBeUndefined();
    expect(tokenFromUpgrade('/?token=', {})).toBeUndefined();
    expect(tokenFromUpgrade('/?tokens=abc', {})).toBeUndefined();
    expect(tokenFromUpgrade(undefined, {})).toBeUndefined();
  });
});

describe('tokenFromSocketIoAuth', () => {
  it('takes a string token from the handshake auth object only', () => {
    expect(tokenFromSocketIoAuth({ token: 'abc' })).toBe('abc');
    for (const auth of [undefined, null, 'abc', {}, { token: 42 }, { token: '' }, { token: ['abc'] }]) {
      expect(tokenFromSocketIoAuth(auth)).toBeUndefined();
    }
  });
});

describe('redactToken', () => {
  it('replaces every token value, however its name is spelt, and keeps the rest', () => {
    expect(redactToken('/~acme/?token=SECRET')).toBe('/~acme/?token=REDACTED');
    expect(redactToken('/~acme/?a=1&token=SECRET&b=2&token=AGAIN')).toBe('/~acme/?a=1&token=REDACTED&b=2&token=REDACTED');
    expect(redactToken('/?t%6Fken=SECRET')).toBe('/?token=REDACTED');
    expect(redactToken('/?token')).toBe('/?token=REDACTED');
    // Positive control: what URLSearchParams reads as `token` is exactly what is redacted.
    for (const url of ['/?t%6Fken=SECRET', '/?a=1&token=SECRET']) {
      expect(tokenFromUpgrade(url, {})).toBe('SECRET');
      expect(redactToken(url)).not.toContain('SECRET');
    }
  });

  it('leaves a URL without a token unchanged', () => {
    expect(redactToken('/~acme/')).toBe('/~acme/');
    expect(redactToken('/~acme/?tokens=1&x=token')).toBe('/~acme/?tokens=1&x=token');
  });
});
