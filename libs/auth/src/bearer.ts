/** The token of an `Authorization: Bearer TOKEN` header (RFC 6750 section 2.1), or undefined. */
export function bearerToken(authorization: string | readonly string[] | undefined): string | undefined {
  if (typeof authorization !== 'string') return undefined;
  // The scheme is case-insensitive; the token is one run of non-blank characters.
  const match = /^[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *$/.exec(authorization);
  return match ? match[1] : undefined;
}
