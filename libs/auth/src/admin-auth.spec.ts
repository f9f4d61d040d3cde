import { createAdminAuth, type AdminAuthDecision, type AdminRequestInfo } from './admin-auth';

const TOKEN = 'admin-token-0123456789abcdef';
const OLD_TOKEN = 'old-admin-token-fedcba9876543210';

function request(method: string, url: string, extra: Partial<AdminRequestInfo> = {}): AdminRequestInfo {
  return { method, url, headers: {}, remoteAddress: '203.0.113.9', ...extra };
}

describe('admin auth', () => {
  const auth = createAdminAuth({ tokens: [TOKEN, OLD_TOKEN], allow: ['10.0.0.0/8', 'fd00::/8'] });

  describe('without tokens (Aphlict behaviour)', () => {
    const open = createAdminAuth({ tokens: [] });

    it('lets every request in with its URL unchanged', () => {
      expect(open.enabled).toBe(false);
      for (const url of ['/?instance=x', '/status/', `/${TOKEN}/status/`, '/metrics']) {
        expect(open.check(request('POST', url))).toEqual({ ok: true, via: 'off', url });
      }
    });
  });

  describe('the bearer header', () => {
    it('lets a request with either token in, saying which token it was', () => {
      expect(auth.enabled).toBe(true);
      expect(auth.check(request('POST', '/?instance=acme', { headers: { authorization: `Bearer ${TOKEN}` } }))).toEqual({
        ok: true,
        via: 'bearer',
        url: '/?instance=acme',
        tokenIndex: 0,
      });
      expect(auth.check(request('GET', '/status/', { headers: { authorization: `bearer ${OLD_TOKEN}` } }))).toMatchObject({
        ok: true,
        via: 'bearer',
        tokenIndex: 1,
      });
    });
  });

  describe('the path token (what Phorge sends with "path": "/TOKEN")', () => {
    it.each([
      [`/${TOKEN}/?instance=X`, '/?instance=X'],
      [`/${TOKEN}/status/?x`, '/status/?x'],
      [`/${TOKEN}/status/`, '/status/'],
      [`/${TOKEN}/metrics`, '/metrics'],
      [`/${TOKEN}`, '/'],
      [`/${TOKEN}?instance=X`, '/?instance=X'],
      [`/${OLD_TOKEN}/`, '/'],
    ])('%s is routed as %s', (url, routed) => {
      const decision = auth.check(request('POST', url));
      expect(decision).toMatchObject({ ok: true, via: 'path', url: routed });
    });

    it('a first segment that is not a token is left in place and refused', () => {
      const decision = auth.check(request('GET', '/status/'));
      expect(decision).toMatchObject({ ok: false, status: 401, reason: 'missing_token' });
    });

    it('a path token and a bearer header together: let in by the header, routed without the path token', () => {
      expect(auth.check(request('POST', `/${TOKEN}/?instance=a`, { headers: { authorization: `Bearer ${OLD_TOKEN}` } }))).toEqual({
        ok: true,
        via: 'bearer',
        url: '/?instance=a',
        tokenIndex: 1,
      });
    });

    it('only a whole segment is a token: prefixes, extensions and other cases of it are not', () => {
      for (const url of [`/${TOKEN.slice(0, -1)}/`, `/${TOKEN}x/`, `/${TOKEN.toUpperCase()}/`, `/x/${TOKEN}/`, `/?${TOKEN}`, `//${TOKEN}/`]) {
        expect(auth.check(request('POST', url)).ok).toBe(false);
      }
    });
  });

  describe('health probes', () => {
    it('GET and HEAD /healthz and /readyz need no token', () => {
      for (const method of ['GET', 'HEAD', 'get']) {
        for (const url of ['/healthz', '/readyz', '/readyz?verbose=1']) {
          expect(auth.check(request(method, url))).toEqual({ ok: true, via: 'exempt', url });
        }
      }
      expect(auth.check(request('GET', `/${TOKEN}/healthz`))).toEqual({ ok: true, via: 'exempt', url: '/healthz' });
    });

    it('other methods and near paths on them still need one', () => {
      for (const [method, url] of [['POST', '/healthz'], ['DELETE', '/readyz'], ['GET', '/healthz/'], ['GET', '/HEALTHZ'], ['GET', '/healthz/x']]) {
        expect(auth.check(request(method, url)).ok).toBe(false);
      }
    });
  });

  describe('allowed addresses (Aphlict peers)', () => {
    it('let in sources in adminAllow without a token, IPv4-mapped ones too, URL unchanged', () => {
      for (const remoteAddress of ['10.1.2.3', '::ffff:10.1.2.3', 'fd00::7']) {
        expect(auth.check(request('POST', '/?instance=x', { remoteAddress }))).toEqual({ ok: true, via: 'allowed_address', url: '/?instance=x' });
      }
    });

    it('refuse every other source without a token', () => {
      for (const remoteAddress of ['11.1.2.3', '::ffff:11.1.2.3', 'fe80::1', '127.0.0.1', undefined]) {
        expect(auth.check(request('POST', '/', { remoteAddress })).ok).toBe(false);
      }
    });
  });

  describe('refusals', () => {
    function refusal(req: AdminRequestInfo): Extract<AdminAuthDecision, { ok: false }> {
      const decision = auth.check(req);
      if (decision.ok) throw new Error(`expected a refusal, got ${JSON.stringify(decision)}`);
      return decision;
    }

    it('answer 401 with WWW-Authenticate: Bearer and the unauthorized error', () => {
      const decision = refusal(request('POST', '/?instance=x'));
      expect(decision).toEqual({
        ok: false,
        status: 401,
        error: 'unauthorized',
        message: expect.stringContaining('needs a token'),
        reason: 'missing_token',
        headers: { 'WWW-Authenticate': 'Bearer' },
      });
    });

    it('say bad_token when a header was given but is not valid, and never repeat what was given', () => {
      const wrong = 'wrong-token-but-long-enough-123';
      for (const authorization of [`Bearer ${wrong}`, `Basic ${wrong}`, 'Bearer', `Bearer ${TOKEN} extra`]) {
        const decision = refusal(request('POST', `/${wrong}/?instance=x`, { headers: { authorization } }));
        expect(decision.reason).toBe('bad_token');
        expect(JSON.stringify(decision)).not.toContain(wrong);
        expect(JSON.stringify(decision)).not.toContain(TOKEN);
      }
    });

    it('treat odd request targets as missing tokens, without throwing', () => {
      for (const url of [undefined, '', '*', 'http://example.com/x', '/%', `/${TOKEN}%2F/`]) {
        expect(auth.check({ method: 'POST', url, headers: {} }).ok).toBe(false);
      }
    });
  });

  it('refuses to build with a bad allow entry', () => {
    expect(() => createAdminAuth({ tokens: [TOKEN], allow: ['10.0.0.0/40'] })).toThrow(/10\.0\.0\.0\/40/);
  });
});
