/**
 * The gateway's admin API as the page uses it: same origin (the admin port that served the
 * page), the admin token as `Authorization: Bearer` (never in a URL), nothing cached.
 */
import type { ConsoleOverview, ConsoleTokenResponse } from '@tidings/protocol';

const TOKEN_KEY = 'tidings.console.adminToken';

/** The admin token of this tab (session storage: gone when the tab closes). */
export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value: string | null) {
    if (value === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value);
  },
};

/** The gateway answered 401: no token, or not one of `auth.adminTokens`. */
export class UnauthorizedError extends Error {
  override name = 'UnauthorizedError';
}

/** Any other refusal, with the gateway's `{error, message}`. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, token = session.token): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: reported below by status
  }
  if (res.status === 401) throw new UnauthorizedError((parsed as { message?: string } | null)?.message ?? 'unauthorized');
  if (!res.ok) {
    const { error, message } = (parsed ?? {}) as { error?: string; message?: string };
    throw new ApiError(res.status, error ?? `http_${res.status}`, message ?? `HTTP ${res.status}`);
  }
  return parsed as T;
}

export const api = {
  overview: (token?: string | null) => call<ConsoleOverview>('GET', '/console/api/overview', undefined, token ?? session.token),
  clientToken: (instance: string, phids: string[]) => call<ConsoleTokenResponse>('POST', '/console/api/client-token', { instance, phids }),
  /** The admin port's own publish (`POST /?instance=`), as Phorge publishes. */
  publish: (instance: string, message: Record<string, unknown>) =>
    call<{ fingerprint: string }>('POST', `/?instance=${encodeURIComponent(instance)}`, message),
};
