/**
 * Purge tags a response carries: Fastly's `Surrogate-Key` (space-separated) and Cloudflare's `Cache-Tag`
 * (comma-separated). Stored with the entry and indexed by the store, so a purge by tag reaches every entry
 * that carries it. Bounded, so that one response cannot bloat the index.
 */
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';

export const TAG_FIELDS = new Set(['surrogate-key', 'cache-tag']);
const MAX_TAGS = 128;
const MAX_TAG_LENGTH = 256;

/** Splits a purge request's or a response's tag fields into tags: deduplicated, bounded, empty ones out. */
export function parseTags(surrogateKey: string | undefined, cacheTag: string | undefined): string[] {
  const tags = new Set<string>();
  for (const t of surrogateKey?.split(/\s+/) ?? []) if (t) tags.add(t);
  for (const t of cacheTag?.split(',') ?? []) if (t.trim()) tags.add(t.trim());
  return [...tags].filter((t) => t.length <= MAX_TAG_LENGTH).slice(0, MAX_TAGS);
}

export function responseTags(raw: RawHeaders): string[] {
  return parseTags(fieldValue(raw, 'surrogate-key'), fieldValue(raw, 'cache-tag'));
}

/** The header section without the tag fields (they are for this cache, not for clients), when it has any. */
export function withoutTagFields(raw: RawHeaders): RawHeaders {
  for (let i = 0; i < raw.length; i += 2)
    if (TAG_FIELDS.has(raw[i].toLowerCase())) return filterFields(raw, (n) => !TAG_FIELDS.has(n));
  return raw;
}
