/** Cache keys: the effective request URI (RFC 9110 §7.1), as the primary key of RFC 9111 §4. */

/** The primary cache key: host lower-cased, default port dropped. */
export function cacheKey(scheme: string, host: string, port: number, path: string): string {
  const defaultPort = scheme === 'https' ? 443 : 80;
  return `${scheme}://${host.toLowerCase()}${port === defaultPort ? '' : `:${port}`}${path}`;
}

/**
 * The request fields a stored response is selected by: its own Vary (RFC 9111 §4.1) plus the fields the
 * operator keys the cache on (`cacheKeyHeaders`), which act as if every response listed them in Vary. An
 * origin that reflects X-Forwarded-Host or the like into a response without saying so in Vary would
 * otherwise let one client's request poison what every other client is served. Lower-case, sorted, or
 * null when there are none.
 */
export function selectingFields(
  vary: readonly string[] | null,
  keyHeaders: readonly string[],
): string[] | null {
  if (keyHeaders.length === 0) return vary === null ? null : [...vary];
  return [...new Set([...(vary ?? []), ...keyHeaders])].sort();
}

/** The cache key of a URI reference resolved against `base`, when it has the same origin (§4.4). */
export function sameOriginKey(base: string, ref: string | undefined): string | null {
  if (!ref) return null;
  try {
    const b = new URL(base);
    const u = new URL(ref, b);
    return u.origin === b.origin ? `${u.origin}${u.pathname}${u.search}` : null;
  } catch {
    return null;
  }
}
