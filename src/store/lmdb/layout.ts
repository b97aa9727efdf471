/**
 * The one LMDB environment in the cache dir, opened by every worker and by the sweeper thread.
 *
 * - entries: key → StoredEntry | VaryIndex (metadata, small bodies inline)
 * - bodies:  [bodyId, chunkNo] → bytes
 * - atime:   key → last use, seconds (batched by workers, read by the sweeper)
 * - uses:    key → { count, since } for --cache-min-uses admission
 */
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';

export interface StoredPolicyData {
  /** Freshness lifetime, seconds. */
  lifetime: number;
  /** must-revalidate, proxy-revalidate or s-maxage (§5.2.2.2, §5.2.2.8, §5.2.2.10): never served stale. */
  mustRevalidate: boolean;
  /** Unqualified no-cache (§5.2.2.4): validate before every reuse. */
  noCache: boolean;
  staleWhileRevalidate: number;
  staleIfError: number;
}

export interface StoredEntry {
  kind: 'entry';
  url: string;
  status: number;
  /** End-to-end response fields as stored, our Via appended, Content-Length exact, no Age. */
  headers: string[];
  requestTime: number;
  responseTime: number;
  initialAge: number;
  policy: StoredPolicyData;
  noCacheFields: string[];
  etag: string | undefined;
  lastModified: number | null;
  bodyId: string;
  size: number;
  chunks: number;
  /** Bodies up to INLINE_MAX live here, so a small hit is one read. */
  body: Buffer | null;
}

export interface VaryIndex {
  kind: 'vary';
  names: string[];
  /** Secondary keys of stored variants, newest last. */
  variants: string[];
}

export interface CacheEnv {
  root: RootDatabase;
  entries: Database<StoredEntry | VaryIndex, string>;
  bodies: Database<Buffer, [string, number]>;
  atime: Database<number, string>;
  uses: Database<{ count: number; since: number }, string>;
}

export function openCacheEnv(cacheDir: string, cacheSize: number): CacheEnv {
  const root = open({
    path: join(cacheDir, 'cache.mdb'),
    noSubdir: true,
    maxDbs: 8,
    // Room for the bound plus what is written before the sweeper catches up; LMDB only maps, it does not allocate.
    mapSize: Math.max(256 * 1024 ** 2, cacheSize * 2 + 256 * 1024 ** 2),
    compression: false,
  });
  return {
    root,
    entries: root.openDB({ name: 'entries', encoding: 'msgpack' }),
    bodies: root.openDB({ name: 'bodies', encoding: 'binary' }),
    atime: root.openDB({ name: 'atime', encoding: 'msgpack' }),
    uses: root.openDB({ name: 'uses', encoding: 'msgpack' }),
  };
}

/** Body ids start with their creation time, so the sweeper can tell an abandoned write from one under way. */
export function newBodyId(): string {
  return `${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}`;
}

export function bodyIdTime(id: string): number {
  return Number.parseInt(id.split('.')[0], 36);
}
