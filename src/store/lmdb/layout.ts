/**
 * The one LMDB environment in the cache dir, opened by every worker and by the sweeper thread.
 *
 * - entries: key → StoredEntry | VaryIndex | PartialEntry (metadata, small bodies inline)
 * - bodies:  [bodyId, chunkNo] → bytes (a partial entry's pieces each have their own bodyId)
 * - atime:   key → last use, seconds (batched by workers, read by the sweeper)
 * - uses:    key → { count, since } for --cache-min-uses admission, and revalidation claims
 * - tags:    tag → key, one duplicate per entry carrying the tag (purge by tag costs its own entries);
 *            written with the entry, removed with it by dropEntry, so eviction and invalidation keep it true
 */
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { Piece, StoredRecord } from '../store.js';

export interface CacheEnv {
  root: RootDatabase;
  entries: Database<StoredRecord, string>;
  bodies: Database<Buffer, [string, number]>;
  atime: Database<number, string>;
  uses: Database<{ count: number; since: number }, string>;
  tags: Database<string, string>;
}

export function openCacheEnv(cacheDir: string, cacheSize: number): CacheEnv {
  const root = open({
    path: join(cacheDir, 'cache.mdb'),
    noSubdir: true,
    maxDbs: 8,
    // Room for the bound plus what is written before the sweeper catches up; LMDB only maps, it does not allocate.
    mapSize: Math.max(256 * 1024 ** 2, cacheSize * 2 + 256 * 1024 ** 2),
    compression: false,
    // Read-ahead stays on (lmdb's `noReadAhead`, MDB_NORDAHEAD, is left unset), on purpose: a body is
    // stored as consecutive chunks and read in order, so the kernel's read-ahead is what a large hit wants.
    // It costs page cache (file pages, shared by every worker and reclaimable), not anonymous memory, which
    // is what a worker is sized by (issue #9).
  });
  return {
    root,
    entries: root.openDB({ name: 'entries', encoding: 'msgpack' }),
    bodies: root.openDB({ name: 'bodies', encoding: 'binary' }),
    atime: root.openDB({ name: 'atime', encoding: 'msgpack' }),
    uses: root.openDB({ name: 'uses', encoding: 'msgpack' }),
    tags: root.openDB({ name: 'tags', dupSort: true, encoding: 'ordered-binary' }),
  };
}

/**
 * Creates the environment and every named database, once, in the primary before any worker starts, and
 * keeps it open for the primary's life; the caller closes it when it stops.
 * - Created first: LMDB creates a named database in a write transaction, and two workers creating them at
 *   once in a fresh environment failed with `MDB_PROBLEM: mdb_page_touch no parent` (seen in a CI run:
 *   both workers died before listening). Workers and the sweeper then only open databases that exist.
 * - Kept open: the first process to open an environment that nobody has open sets up its lock file.
 *   With nobody holding it, six processes opening at once failed about one round in ten (one opener
 *   exits with EINVAL, "No transaction to renew", in lmdb-js's first transaction; seen in CI on Node 22),
 *   and the failure sticks to that process's environment, so retrying does not help. With the primary
 *   holding it open, none failed in 200 rounds.
 */
export function prepareCacheEnv(cacheDir: string, cacheSize: number): CacheEnv {
  return openCacheEnv(cacheDir, cacheSize);
}

/**
 * Inside a write transaction: removes the record at `key` (an entry, or a Vary index and all its variants)
 * with its body chunks and recency. The worker's invalidation and the sweeper's eviction both use it.
 */
export function dropEntry(env: CacheEnv, key: string, rec = env.entries.get(key)): boolean {
  if (rec === undefined) return false;
  if (rec.kind === 'vary') for (const v of rec.variants) dropEntry(env, v);
  else {
    if (rec.kind === 'partial') dropPieces(env, rec.pieces);
    else dropPieces(env, [rec]);
    for (const tag of rec.tags ?? []) env.tags.removeSync(tag, key);
  }
  env.entries.removeSync(key);
  env.atime.removeSync(key);
  return true;
}

/** Inside a write transaction: removes the body chunks of entries or pieces. */
export function dropPieces(env: CacheEnv, bodies: ReadonlyArray<Pick<Piece, 'bodyId' | 'chunks'>>): void {
  for (const b of bodies) for (let i = 0; i < b.chunks; i++) env.bodies.removeSync([b.bodyId, i]);
}

/**
 * lmdb-js rejects a failed commit's writes with an error whose `commitError` is a second promise, rejected
 * with the cause (ENOSPC, EIO, MDB_MAP_FULL). Unhandled, it would kill the process.
 */
export function silenceCommitError(err: unknown): void {
  const p = (err as { commitError?: Promise<unknown> } | null)?.commitError;
  if (p && typeof p.catch === 'function') p.catch(() => {});
}

/**
 * lmdb-js rejects a failed commit's own promise with the raw error (EIO, ENOSPC) as well; when that
 * rejection is found unhandled before the writes' handlers silenced it, it is still only a failed write.
 */
export function isCommitFailure(err: unknown): boolean {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'number' &&
    /[/\\]lmdb[/\\]write\.js:/.test(err.stack ?? '')
  );
}

/** Body ids start with their creation time, so the sweeper can tell an abandoned write from one under way. */
export function newBodyId(): string {
  return `${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}`;
}

export function bodyIdTime(id: string): number {
  return Number.parseInt(id.split('.')[0], 36);
}
