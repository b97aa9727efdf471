/**
 * store: the worker's side of the shared LMDB cache. Entries become visible only when their metadata
 * commits, after every body chunk, so a reader never sees a partial object; a crash leaves at most
 * unreferenced chunks, which the sweeper removes.
 */
import type { ServerResponse } from 'node:http';
import { varyKey } from '../../cache/policy.js';
import type { RawHeaders } from '../../http/forwarding.js';
import type { Logger } from '../../shared/logger.js';
import { type CacheEnv, newBodyId, openCacheEnv, type StoredEntry, type VaryIndex } from './layout.js';

/** Bodies up to this size are stored inside the entry, so such a hit is a single read. */
export const INLINE_MAX = 256 * 1024;
export const CHUNK_SIZE = 256 * 1024;
/** Variants kept per URL; the oldest goes first. */
const MAX_VARIANTS = 32;
const RECENCY_FLUSH_MS = 2000;
const SNAPSHOT_MAX_AGE_MS = 100;

export type Lookup = { entry: StoredEntry; key: string } | { miss: 'uri-miss' | 'vary-miss' };

export class Store {
  readonly env: CacheEnv;
  private touched = new Map<string, number>();
  private readonly recentUses = new Map<string, { count: number; since: number }>();
  private lastWriteErrorLog = 0;
  private timer: NodeJS.Timeout;
  private snapshotTimer: NodeJS.Timeout;

  constructor(
    cacheDir: string,
    cacheSize: number,
    private readonly log: Logger,
  ) {
    this.env = openCacheEnv(cacheDir, cacheSize);
    // Recency is approximate and written in batches: a hit never waits on a write.
    this.timer = setInterval(() => this.flushRecency(), RECENCY_FLUSH_MS);
    this.timer.unref();
    // lmdb-js may keep one read snapshot across many event-loop turns in a busy process; bound its age so
    // other workers' commits show up and LMDB can reuse freed pages.
    this.snapshotTimer = setInterval(() => this.env.root.resetReadTxn(), SNAPSHOT_MAX_AGE_MS);
    this.snapshotTimer.unref();
  }

  /** RFC 9111 §4.1: the primary key, then the variant selected by the stored Vary fields. */
  lookup(url: string, reqHeaders: RawHeaders): Lookup {
    const rec = this.fresh(url);
    if (rec === undefined) return { miss: 'uri-miss' };
    if (rec.kind === 'entry') return { entry: rec, key: url };
    const key = variantKey(url, rec.names, reqHeaders);
    const entry = this.fresh(key);
    return entry?.kind === 'entry' ? { entry, key } : { miss: 'vary-miss' };
  }

  /**
   * lmdb-js renews its read snapshot on a timer, so a busy worker can look at a snapshot from before another
   * worker's commit. Before calling something a miss, look again in a new snapshot: a miss costs a fetch,
   * the second read costs microseconds.
   */
  private fresh(key: string): StoredEntry | VaryIndex | undefined {
    const rec = this.env.entries.get(key);
    if (rec !== undefined) return rec;
    this.env.root.resetReadTxn();
    return this.env.entries.get(key);
  }

  touch(key: string): void {
    this.touched.set(key, Math.floor(Date.now() / 1000));
  }

  private flushRecency(): void {
    if (this.touched.size === 0) return;
    const batch = this.touched;
    this.touched = new Map();
    for (const [k, t] of batch) this.env.atime.put(k, t).catch((e) => this.writeFailed(e));
  }

  writer(maxSize: number): BodyWriter {
    return new BodyWriter(this, maxSize);
  }

  /** Publishes an entry whose body the writer holds; resolves false (and cleans up) when it could not. */
  async commit(
    url: string,
    varyNames: string[] | null,
    reqHeaders: RawHeaders,
    entry: StoredEntry,
    body: BodyWriter,
  ): Promise<boolean> {
    if (!(await body.finish())) {
      body.discard();
      return false;
    }
    entry.bodyId = body.id;
    entry.size = body.size;
    entry.chunks = body.chunks;
    entry.body = body.inline;
    const { entries, atime } = this.env;
    try {
      await entries.transaction(() => {
        if (varyNames === null) {
          this.dropAt(url);
          entries.putSync(url, entry);
        } else {
          const key = variantKey(url, varyNames, reqHeaders);
          const prev = entries.get(url);
          let variants: string[] = [];
          if (prev?.kind === 'vary' && sameNames(prev.names, varyNames))
            variants = prev.variants.filter((v) => v !== key);
          else this.dropAt(url);
          this.dropAt(key);
          variants.push(key);
          while (variants.length > MAX_VARIANTS) this.dropAt(variants.shift() as string);
          const index: VaryIndex = { kind: 'vary', names: varyNames, variants };
          entries.putSync(url, index);
          entries.putSync(key, entry);
        }
        atime.putSync(url, Math.floor(Date.now() / 1000));
      });
      return true;
    } catch (err) {
      this.writeFailed(err);
      body.discard();
      return false;
    }
  }

  /** RFC 9111 §3.2: a 304 refreshes the stored header section and times; the body stays. */
  update(key: string, entry: StoredEntry): Promise<unknown> {
    return this.env.entries
      .transaction(() => {
        const cur = this.env.entries.get(key);
        // Only if nobody replaced the object meanwhile.
        if (cur?.kind === 'entry' && cur.bodyId === entry.bodyId) this.env.entries.putSync(key, entry);
      })
      .catch((e) => this.writeFailed(e));
  }

  /** Removes a URL and every variant of it. Resolves with whether anything was stored. */
  invalidate(url: string): Promise<boolean> {
    return this.env.entries
      .transaction(() => this.dropAt(url))
      .catch((e) => {
        this.writeFailed(e);
        return false;
      });
  }

  /** Inside a write transaction: removes the record at key, its variants and its body chunks. */
  private dropAt(key: string): boolean {
    const rec = this.env.entries.get(key);
    if (rec === undefined) return false;
    if (rec.kind === 'vary') for (const v of rec.variants) this.dropAt(v);
    else for (let i = 0; i < rec.chunks; i++) this.env.bodies.removeSync([rec.bodyId, i]);
    this.env.entries.removeSync(key);
    this.env.atime.removeSync(key);
    return true;
  }

  /**
   * Writes a stored body to the client. Large bodies go chunk by chunk with back-pressure, all read in one
   * read transaction so a concurrent replacement or eviction cannot pull chunks from under the stream.
   */
  sendBody(entry: StoredEntry, res: ServerResponse, start = 0, end = entry.size - 1): void {
    if (entry.body !== null || entry.chunks === 0) {
      const body = entry.body ?? Buffer.alloc(0);
      res.end(start === 0 && end === body.length - 1 ? body : body.subarray(start, end + 1));
      return;
    }
    const txn = this.env.root.useReadTransaction();
    // Chunks are exactly CHUNK_SIZE bytes (the last one shorter), so a range starts at a computable chunk.
    let i = Math.floor(start / CHUNK_SIZE);
    const last = Math.floor(end / CHUNK_SIZE);
    let open = true;
    const finish = () => {
      if (open) {
        open = false;
        txn.done();
      }
    };
    res.once('close', finish);
    const pump = (): void => {
      while (open && i <= last) {
        let chunk = this.env.bodies.get([entry.bodyId, i], { transaction: txn });
        if (chunk === undefined) {
          this.log.error({ url: entry.url, chunk: i }, 'stored body chunk missing: cutting the response');
          finish();
          res.destroy();
          return;
        }
        const base = i * CHUNK_SIZE;
        if (start > base || end < base + chunk.length - 1) {
          chunk = chunk.subarray(Math.max(0, start - base), Math.min(chunk.length, end - base + 1));
        }
        i++;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      finish();
      res.end();
    };
    pump();
  }

  /** Whether every body chunk of an entry is present (a damaged store must not serve a short body). */
  bodyComplete(e: StoredEntry): boolean {
    for (let i = 0; i < e.chunks; i++) if (!this.env.bodies.doesExist([e.bodyId, i])) return false;
    return true;
  }

  /** For the cache manager: stored responses and their bytes, and the first `limit` entries. */
  summary(limit: number): { objects: number; bytes: number; list: StoredEntry[] } {
    this.env.root.resetReadTxn();
    let objects = 0;
    let bytes = 0;
    const list: StoredEntry[] = [];
    for (const { value } of this.env.entries.getRange()) {
      if (value.kind !== 'entry') continue;
      objects++;
      bytes += value.size;
      if (list.length < limit) list.push(value);
    }
    return { objects, bytes, list };
  }

  /**
   * RFC 5861 §3 "once per object" across workers: claims the background revalidation of `key` in the shared
   * store. Resolves true for the one worker that may go ahead; a claim older than `ttlMs` is presumed dead.
   */
  async claimRevalidation(key: string, ttlMs: number, seen: StoredEntry): Promise<boolean> {
    const marker = `revalidating\u0000${key}`;
    try {
      return await this.env.uses.transaction(() => {
        const now = Date.now();
        const cur = this.env.uses.get(marker);
        if (cur && now - cur.since < ttlMs) return false;
        // A worker reading an older snapshot may see stale what another worker has just revalidated; the
        // write transaction sees the latest entry, so that revalidation is not repeated.
        const stored = this.env.entries.get(key);
        if (stored?.kind === 'entry' && stored.responseTime !== seen.responseTime) return false;
        this.env.uses.putSync(marker, { count: 0, since: now });
        return true;
      });
    } catch (err) {
      this.writeFailed(err);
      return false;
    }
  }

  releaseRevalidation(key: string): void {
    this.env.uses.remove(`revalidating\u0000${key}`).catch((e) => this.writeFailed(e));
  }

  /** nginx's proxy_cache_min_uses: store on the Nth request within the window. */
  admit(key: string, minUses: number, windowMs: number): boolean {
    if (minUses <= 1) return true;
    const now = Date.now();
    // This worker's own last count, while its write may not be visible in the read snapshot yet: without it
    // requests in quick succession all read the same stale count.
    const stored = this.env.uses.get(key);
    const mine = this.recentUses.get(key);
    const u = mine && (!stored || mine.since > stored.since || mine.count > stored.count) ? mine : stored;
    const since = u && now - u.since <= windowMs ? u.since : now;
    const count = (u && since === u.since ? u.count : 0) + 1;
    if (this.recentUses.size > 10_000) this.recentUses.clear();
    if (count >= minUses) {
      this.recentUses.delete(key);
      this.env.uses.remove(key).catch((e) => this.writeFailed(e));
      return true;
    }
    this.recentUses.set(key, { count, since });
    this.env.uses.put(key, { count, since }).catch((e) => this.writeFailed(e));
    return false;
  }

  /** A failed write (disk full, map full) costs that entry only; it is logged at most once a minute. */
  writeFailed(err: unknown): void {
    silenceCommitError(err);
    const now = Date.now();
    if (now - this.lastWriteErrorLog > 60_000) {
      this.lastWriteErrorLog = now;
      this.log.error(
        { err: (err as Error).message },
        'cache write failed: the response is served but not stored',
      );
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.snapshotTimer);
    this.flushRecency();
    await this.env.root.close();
  }
}

/**
 * lmdb-js rejects a failed commit's writes with an error whose `commitError` is a second promise, rejected
 * with the cause (ENOSPC, EIO, MDB_MAP_FULL). Unhandled, it would kill the process.
 */
export function silenceCommitError(err: unknown): void {
  const p = (err as { commitError?: Promise<unknown> } | null)?.commitError;
  if (p && typeof p.catch === 'function') p.catch(() => {});
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

export function variantKey(url: string, names: string[], reqHeaders: RawHeaders): string {
  return `${url}\u0000${varyKey(names, reqHeaders)}`;
}

/** Collects a body as it streams to the client: small ones in memory, large ones as chunks written ahead. */
export class BodyWriter {
  readonly id = newBodyId();
  size = 0;
  chunks = 0;
  inline: Buffer | null = null;
  failed: string | null = null;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private puts: Promise<boolean>[] = [];

  constructor(
    private readonly store: Store,
    private readonly maxSize: number,
  ) {}

  write(chunk: Buffer): void {
    if (this.failed) return;
    this.size += chunk.length;
    if (this.size > this.maxSize) {
      this.fail('larger than max-object-size');
      return;
    }
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    if (this.size > INLINE_MAX) while (this.pendingLen >= CHUNK_SIZE) this.flushChunk();
  }

  /** Writes the next chunk: exactly CHUNK_SIZE bytes, or what is left at the end. */
  private flushChunk(): void {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingLen);
    const buf = all.length > CHUNK_SIZE ? all.subarray(0, CHUNK_SIZE) : all;
    const rest = all.subarray(buf.length);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLen = rest.length;
    const put = this.store.env.bodies.put([this.id, this.chunks++], buf);
    // Handled here at once (finish() reports it), so a failed write is never an unhandled rejection.
    put.catch(silenceCommitError);
    this.puts.push(put);
  }

  fail(reason: string): void {
    if (this.failed) return;
    this.failed = reason;
    this.pending = [];
    this.discard();
  }

  /** Resolves true when every chunk is durable in the store and the body is whole. */
  async finish(): Promise<boolean> {
    if (this.failed) return false;
    if (this.size <= INLINE_MAX) {
      this.inline = Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
    } else if (this.pendingLen > 0) this.flushChunk();
    try {
      await Promise.all(this.puts);
      return !this.failed;
    } catch (err) {
      this.store.writeFailed(err);
      this.failed = 'write failed';
      return false;
    }
  }

  /** Removes whatever chunks were written, once their writes have settled. */
  discard(): void {
    const n = this.chunks;
    if (n === 0) return;
    void Promise.allSettled(this.puts).then(() => {
      for (let i = 0; i < n; i++) this.store.env.bodies.remove([this.id, i]).catch(() => {});
    });
  }
}
