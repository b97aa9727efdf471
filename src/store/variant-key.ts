import { varyKey } from '../cache/policy.js';
import type { RawHeaders } from '../http/fields.js';

/** The key a variant is stored under: the URL, then the secondary key from its Vary fields (RFC 9111 §4.1). */
export function variantKey(url: string, names: string[], reqHeaders: RawHeaders): string {
  return `${url}\u0000${varyKey(names, reqHeaders)}`;
}
