/** RFC 9211 Cache-Status: the parameters of our member, and its text. */

/** The name of our member in Cache-Status lists: the cache, not the host (X-Cache names the host). */
export const CACHE_NAME = 'cuttle';

export interface CacheStatus {
  hit?: boolean;
  fwd?: 'uri-miss' | 'vary-miss' | 'miss' | 'stale' | 'request' | 'method';
  fwdStatus?: number;
  stored?: boolean;
  /** RFC 9211 §2.5: answered by another request's fetch (collapsed forwarding). */
  collapsed?: boolean;
  ttl?: number;
  detail?: string;
}

/** RFC 9211 §2: one list member for this cache. */
export function formatCacheStatus(name: string, s: CacheStatus): string {
  let out = name;
  if (s.hit) out += '; hit';
  if (s.fwd) out += `; fwd=${s.fwd}`;
  if (s.fwdStatus !== undefined) out += `; fwd-status=${s.fwdStatus}`;
  if (s.stored) out += '; stored';
  if (s.collapsed) out += '; collapsed';
  if (s.ttl !== undefined) out += `; ttl=${Math.round(s.ttl)}`;
  if (s.detail) out += `; detail="${s.detail.replace(/["\\]/g, '')}"`;
  return out;
}
