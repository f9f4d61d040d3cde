/**
 * Who may use the admin port. With `auth.adminTokens` set, every request but the health
 * probes needs one of the tokens, either as `Authorization: Bearer TOKEN` or as the first
 * path segment (`POST /TOKEN/?instance=X`): the form Phorge already sends when its admin
 * entry in `notification.servers` has `"path": "/TOKEN"`. Addresses in `auth.adminAllow`
 * (real Aphlict peers, which send no token) are let in without one. Without tokens the
 * port is open, as Aphlict's is.
 *
 * The decision is made from the request line and headers alone, so a refused request's
 * body is never read. Tokens are compared in constant time (SecretSet) and never appear
 * in a decision's message.
 */
import { bearerToken } from './bearer';
import { createAddressMatcher } from './cidr';
import { SecretSet } from './secret-set';

export interface AdminAuthOptions {
  /** `auth.adminTokens`; empty: no authentication (Aphlict's behaviour). */
  tokens: readonly string[];
  /** `auth.adminAllow`: addresses or CIDR ranges let in without a token. Default none. */
  allow?: readonly string[];
}

/** What the decision needs of a request: node:http's IncomingMessage fits. */
export interface AdminRequestInfo {
  method?: string;
  /** The raw request target, path and query (`/TOKEN/status/?instance=x`). */
  url?: string;
  headers: { authorization?: string | readonly string[] };
  /** The socket's remote address (IPv4-mapped IPv6 is matched as IPv4). */
  remoteAddress?: string;
}

/**
 * How a request was let in: auth is `off` (no tokens configured), the route is `exempt`
 * (GET/HEAD /healthz and /readyz), a `bearer` header or a `path` token, or an
 * `allowed_address`.
 */
export type AdminAuthMethod = 'off' | 'exempt' | 'bearer' | 'path' | 'allowed_address';

/** `missing_token`: no Authorization header; `bad_token`: one that is not a valid token. */
export type AdminAuthRefusal = 'missing_token' | 'bad_token';

export type AdminAuthDecision =
  | {
      ok: true;
      via: AdminAuthMethod;
      /** The request target to route: the path token removed (`/TOKEN/status/?x` -> `/status/?x`, `/TOKEN` -> `/`). */
      url: string;
      /** Index in `tokens` of the token given (bearer or path); a rate-limit key that is not the secret. */
      tokenIndex?: number;
    }
  | {
      ok: false;
      status: 401;
      /** The JSON body's `error` field. */
      error: 'unauthorized';
      /** The JSON body's `message` field; never holds the token. */
      message: string;
      /** A counter label. */
      reason: AdminAuthRefusal;
      /** Headers the 401 carries. */
      headers: { 'WWW-Authenticate': 'Bearer' };
    };

export interface AdminAuth {
  /** False when no tokens are configured: every request is let in, URL unchanged. */
  readonly enabled: boolean;
  check(request: AdminRequestInfo): AdminAuthDecision;
}

const EXEMPT_PATHS = new Set(['/healthz', '/readyz']);
// HEAD too: the admin app serves these probes for GET and HEAD (express answers HEAD with the GET route).
const EXEMPT_METHODS = new Set(['GET', 'HEAD']);

const REFUSAL_MESSAGE =
  'this admin server needs a token: send "Authorization: Bearer TOKEN" or put the token first in the path (/TOKEN/...)';

/** The first path segment and the target without it: `/a/b?x` -> ['a', '/b?x'], `/a?x` -> ['a', '/?x']. */
function splitFirstSegment(url: string): [string, string] {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  const search = query === -1 ? '' : url.slice(query);
  if (!path.startsWith('/')) return ['', url];
  const slash = path.indexOf('/', 1);
  if (slash === -1) return [path.slice(1), `/${search}`];
  return [path.slice(1, slash), path.slice(slash) + search];
}

/** Builds the admin port's gate. Throws CidrError for a bad `allow` entry. */
export function createAdminAuth(options: AdminAuthOptions): AdminAuth {
  const tokens = new SecretSet(options.tokens);
  const allowed = createAddressMatcher(options.allow ?? []);
  const enabled = tokens.size > 0;
  return {
    enabled,
    check(request) {
      const url = request.url ?? '/';
      if (!enabled) return { ok: true, via: 'off', url };
      const [segment, rest] = splitFirstSegment(url);
      // A segment is only a token when it is one: /status/ stays /status/.
      const pathIndex = segment === '' ? -1 : tokens.indexOf(segment);
      const routed = pathIndex === -1 ? url : rest;
      const path = routed.split('?', 1)[0];
      if (EXEMPT_PATHS.has(path) && EXEMPT_METHODS.has((request.method ?? '').toUpperCase())) return { ok: true, via: 'exempt', url: routed };
      const bearer = bearerToken(request.headers.authorization);
      const bearerIndex = bearer === undefined ? -1 : tokens.indexOf(bearer);
      if (bearerIndex !== -1) return { ok: true, via: 'bearer', url: routed, tokenIndex: bearerIndex };
      if (pathIndex !== -1) return { ok: true, via: 'path', url: routed, tokenIndex: pathIndex };
      if (allowed.matches(request.remoteAddress)) return { ok: true, via: 'allowed_address', url };
      return {
        ok: false,
        status: 401,
        error: 'unauthorized',
        message: REFUSAL_MESSAGE,
        reason: request.headers.authorization === undefined ? 'missing_token' : 'bad_token',
        headers: { 'WWW-Authenticate': 'Bearer' },
      };
    },
  };
}
