import { varyKey } from '../cache/policy.js';
import { languagePreference, parseAcceptLanguage, topPreference } from '../http/accept-language.js';
import { fieldValue, type RawHeaders } from '../http/fields.js';
import type { StoredEntry } from './store.js';

/** The key a variant is stored under: the URL, then the secondary key from its Vary fields (RFC 9111 §4.1). */
export function variantKey(url: string, names: string[], reqHeaders: RawHeaders): string {
  return `${url}\u0000${varyKey(names, reqHeaders)}`;
}

/**
 * RFC 9110 §12.5.4 for a response that varies on Accept-Language alone: with no variant stored for these
 * exact preferences, a stored variant whose Content-Language is the client's first choice serves it (the
 * newest such). Both stores use it when their exact lookup misses.
 */
export function languageVariant(
  names: string[],
  reqHeaders: RawHeaders,
  variants: readonly string[],
  get: (key: string) => StoredEntry | undefined,
): { entry: StoredEntry; key: string } | null {
  if (names.length !== 1 || names[0] !== 'accept-language') return null;
  const accept = fieldValue(reqHeaders, 'accept-language');
  if (accept === undefined) return null;
  const ranges = parseAcceptLanguage(accept);
  const top = topPreference(ranges);
  if (top === 0) return null;
  for (let i = variants.length - 1; i >= 0; i--) {
    const entry = get(variants[i]);
    if (entry && languagePreference(ranges, fieldValue(entry.headers, 'content-language')) === top)
      return { entry, key: variants[i] };
  }
  return null;
}
