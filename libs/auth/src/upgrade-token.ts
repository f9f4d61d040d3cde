/**
 * Where a client's connection token travels: on a raw Aphlict socket as `?token=` on the
 * WebSocket URL or as `Authorization: Bearer` on the upgrade request; on Socket.IO as the
 * handshake's `auth: {token}`.
 */
import { bearerToken } from './bearer';

/** The query of a request target, or undefined without one. */
function queryOf(url: string | undefined): URLSearchParams | undefined {
  if (url === undefined) return undefined;
  const q = url.indexOf('?');
  return q === -1 ? undefined : new URLSearchParams(url.slice(q + 1));
}

/**
 * The token of a raw WebSocket upgrade: the Authorization header's when there is one (it
 * does not end up in access logs), else the first `token` query parameter; undefined when
 * neither is given.
 */
export function tokenFromUpgrade(url: string | undefined, headers: { authorization?: string | readonly string[] }): string | undefined {
  const bearer = bearerToken(headers.authorization);
  if (bearer !== undefined) return bearer;
  const fromQuery = queryOf(url)?.get('token');
  return fromQuery === null || fromQuery === undefined || fromQuery === '' ? undefined : fromQuery;
}

/** The token of a Socket.IO handshake's `auth` object (`io(url, {auth: {token}})`), when it is a string. */
export function tokenFromSocketIoAuth(auth: unknown): string | undefined {
  if (auth === null || typeof auth !== 'object') return undefined;
  const token = (auth as { token?: unknown }).token;
  return typeof token === 'string' && token !== '' ? token : undefined;
}

/** A query parameter's name as URLSearchParams reads it (`t%6Fken` is `token`). */
function paramName(part: string): string {
  const raw = part.split('=', 1)[0].replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** A request target fit for a log line: every `token` query value replaced by `REDACTED`. */
export function redactToken(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const parts = url
    .slice(q + 1)
    .split('&')
    .map((part) => (paramName(part) === 'token' ? 'token=REDACTED' : part));
  return `${url.slice(0, q)}?${parts.join('&')}`;
}
