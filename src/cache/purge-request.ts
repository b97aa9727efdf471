/**
 * The body of `POST /cuttle-internal/purge`: `{"urls": [...]}` and/or `{"tags": [...]}`, optionally
 * `"soft": true` (as the `Fastly-Soft-Purge: 1` header). URLs become cache keys the way route.ts makes
 * them (scheme and host lower-cased, default port dropped), so `http://Example.test:80/a` purges
 * `http://example.test/a`.
 */
import { cacheKey } from './key.js';

export interface PurgeRequest {
  urls: string[];
  tags: string[];
  soft: boolean;
}

const MAX_ITEMS = 10_000;

/** The purge a JSON body asks for, or a short sentence saying what is wrong with it. */
export function parsePurgeRequest(body: string): PurgeRequest | string {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    return 'the body is not JSON';
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'expected a JSON object';
  const { urls = [], tags = [], soft = false } = data as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== '');
  if (!strings(urls)) return '"urls" must be a list of URLs';
  if (!strings(tags)) return '"tags" must be a list of tags';
  if (typeof soft !== 'boolean') return '"soft" must be true or false';
  const u = urls as string[];
  const t = tags as string[];
  if (u.length + t.length === 0) return 'nothing to purge: give "urls" or "tags"';
  if (u.length + t.length > MAX_ITEMS) return `at most ${MAX_ITEMS} URLs and tags in one purge`;
  const keys: string[] = [];
  for (const url of u) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `not an absolute URL: ${url.slice(0, 200)}`;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      return `not an http(s) URL: ${url.slice(0, 200)}`;
    const scheme = parsed.protocol.slice(0, -1);
    const port = Number(parsed.port) || (scheme === 'https' ? 443 : 80);
    keys.push(cacheKey(scheme, parsed.hostname, port, `${parsed.pathname}${parsed.search}`));
  }
  return { urls: keys, tags: t, soft };
}
