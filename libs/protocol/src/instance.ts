import { DEFAULT_INSTANCE } from './message';

/**
 * The one rule for instance names, on every transport (raw socket path, Socket.IO auth,
 * admin `?instance=`): 1 to 128 characters, none of them whitespace, a control character,
 * `/` or `~` (what Aphlict's path parsing can produce, bounded). A name outside it is
 * refused where it enters, before it can create any per-instance state.
 */
const INSTANCE_PATTERN = /^[^\s/~\p{Cc}]{1,128}$/u;

export const INSTANCE_RULE = 'an instance name has 1 to 128 characters, without whitespace, control characters, "/" or "~"';

export function isValidInstance(instance: string): boolean {
  return INSTANCE_PATTERN.test(instance);
}

/**
 * The instance named by a client socket's path, as Aphlict reads it: the text after the
 * first `~` up to the next `~`, with every `/` removed; no `~` or nothing after it means
 * `default`. A prefix before the `~` is allowed (`/ws/~acme/` is `acme`).
 */
export function instanceFromPath(path: string): string {
  const tilde = path.indexOf('~');
  if (tilde === -1) return DEFAULT_INSTANCE;
  const end = path.indexOf('~', tilde + 1);
  const instance = path.slice(tilde + 1, end === -1 ? undefined : end).replace(/\//g, '');
  return instance.length ? instance : DEFAULT_INSTANCE;
}

/** The instance named by `?instance=` on the admin port; absent or empty means `default`. */
export function instanceFromQuery(value: unknown): string {
  if (typeof value === 'string' && value.length) return value;
  if (Array.isArray(value) && typeof value[0] === 'string' && value[0].length) return value[0];
  return DEFAULT_INSTANCE;
}
