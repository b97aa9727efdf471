/**
 * The shared cache store on LMDB, one environment for every worker. Entries become visible only when their
 * metadata commits, after every body chunk, so a reader never sees a partial object; a crash leaves at most
 * unreferenced chunks, which the sweeper removes. See ../store.ts for an entry's life.
 */
import type { RawHeaders } from '../../http/fields.js';
import type { Logger } from '../../shared/logger.js';
import {
  type BodySink,
  type BodyWriter,
  type CacheStore,
  CHUNK_SIZE,
  type CombinePiece,
  type Lookup,
  MAX_VARIANTS,
  type PartialEntry,
  type StoredEntry,
  type StoredRecord,
  type StoreSummary,
  type Stores,
  staleNow,
  storedBytes,
} from '../store.js';
import { languageVariant, variantKey } from '../variant-key.js';
import { LmdbAdmission } from './admission.js';
import { LmdbBodyWriter } from './body-writer.js';
import { LmdbClaims } from './claims.js';
import { DecodedEntries } from './decoded-entries.js';
import { type CacheEnv, dropEntry, dropPieces, openCacheEnv } from './layout.js';
import { LmdbRecency } from './recency.js';
import { type WriteFailed, writeFailureReporter } from './write-failed.js';

const SNAPSHOT_MAX_AGE_MS = 100;

export class LmdbStore implements CacheStore {
  private readonly snapshotTimer: NodeJS.Timeout;
  private readonly decoded: DecodedEntries;

  constructor(
    readonly env: CacheEnv,
    private readonly log: Logger,
    private readonly writeFailed: WriteFailed,
  ) {
    // lmdb-js may keep one read snapshot across many event-loop turns in a busy process; bound its age so
    // other workers' commits show up and LMDB can reuse freed pages.
    this.snapshotTimer = setInterval(() => this.env.root.resetReadTxn(), SNAPSHOT_MAX_AGE_MS);
    this.snapshotTimer.unref();
    this.decoded = new DecodedEntries(env.entries);
  }

  lookup(url: string, reqHeaders: RawHeaders): Lookup {
    const rec = this.fresh(url);
    if (rec === undefined) return { miss: 'uri-miss' };
    if (rec.kind === 'entry') return { entry: rec, key: url };
    if (rec.kind === 'partial') return { miss: 'uri-miss', partial: rec };
    const key = variantKey(url, rec.names, reqHeaders);
    const entry = this.fresh(key);
    if (entry?.kind === 'entry') return { entry, key };
    const byLanguage = languageVariant(rec.names, reqHeaders, rec.variants, (k) => {
      const r = this.decoded.get(k);
      return r?.kind === 'entry' ? r : undefined;
    });
    return byLanguage ?? { miss: 'vary-miss' };
  }

  /**
   * lmdb-js renews its read snapshot on a timer, so a busy worker can look at a snapshot from before another
   * worker's commit. Before calling something a miss, look again in a new snapshot: a miss costs a fetch,
   * the second read costs microseconds.
   */
  private fresh(key: string): StoredRecord | undefined {
    const rec = this.decoded.get(key);
    if (rec !== undefined) return rec;
    this.env.root.resetReadTxn();
    return this.decoded.get(key);
  }

  bodyComplete(e: StoredEntry): boolean {
    for (let i = 0; i < e.chunks; i++) if (!this.env.bodies.doesExist([e.bodyId, i])) return false;
    return true;
  }

  /**
   * Large bodies go chunk by chunk with back-pressure, all read in one read transaction so a concurrent
   * replacement or eviction cannot pull chunks from under the stream.
   */
  readBody(entry: StoredEntry, start: number, end: number, sink: BodySink): void {
    if (entry.body !== null || entry.chunks === 0) {
      const body = entry.body ?? Buffer.alloc(0);
      sink.end(start === 0 && end === body.length - 1 ? body : body.subarray(start, end + 1));
      return;
    }
    const txn = this.env.root.useReadTransaction();
    let i = Math.floor(start / CHUNK_SIZE);
    const last = Math.floor(end / CHUNK_SIZE);
    let open = true;
    const finish = () => {
      if (open) {
        open = false;
        txn.done();
      }
    };
    sink.onGone(finish);
    const pump = (): void => {
      while (open && i <= last) {
        let chunk = this.env.bodies.get([entry.bodyId, i], { transaction: txn });
        if (chunk === undefined) {
          this.log.error({ url: entry.url, chunk: i }, 'stored body chunk missing: cutting the response');
          finish();
          sink.abort('stored body chunk missing');
          return;
        }
        const base = i * CHUNK_SIZE;
        if (start > base || end < base + chunk.length - 1) {
          chunk = chunk.subarray(Math.max(0, start - base), Math.min(chunk.length, end - base + 1));
        }
        i++;
        if (!sink.write(chunk, pump)) return;
      }
      if (!open) return;
      finish();
      sink.end();
    };
    pump();
  }

  renewSnapshot(): void {
    this.env.root.resetReadTxn();
  }

  /** A chunk another worker has just committed may postdate this worker's read snapshot: renew it once. */
  readChunk(bodyId: string, n: number): Buffer | undefined {
    const key: [string, number] = [bodyId, n];
    const chunk = this.env.bodies.get(key);
    if (chunk !== undefined) return chunk;
    this.env.root.resetReadTxn();
    return this.env.bodies.get(key);
  }

  writer(maxSize: number): BodyWriter {
    return new LmdbBodyWriter(this.env, maxSize, this.writeFailed);
  }

  async commit(
    url: string,
    varyNames: string[] | null,
    reqHeaders: RawHeaders,
    entry: StoredEntry,
    writer: BodyWriter,
    replaces?: string,
  ): Promise<boolean> {
    const body = writer as LmdbBodyWriter;
    if (!(await body.finish())) {
      body.discard();
      return false;
    }
    entry.bodyId = body.id;
    entry.size = body.size;
    entry.chunks = body.chunks;
    entry.body = body.inline;
    const env = this.env;
    const { entries, atime } = env;
    try {
      const done = await entries.transaction(() => {
        if (replaces !== undefined && recordId(entries.get(url)) !== replaces) return false;
        if (varyNames === null) {
          dropEntry(env, url);
          entries.putSync(url, entry);
          indexTags(env, url, entry);
        } else {
          const key = variantKey(url, varyNames, reqHeaders);
          const prev = entries.get(url);
          let variants: string[] = [];
          if (prev?.kind === 'vary' && sameNames(prev.names, varyNames))
            variants = prev.variants.filter((v) => v !== key);
          else dropEntry(env, url, prev);
          dropEntry(env, key);
          variants.push(key);
          while (variants.length > MAX_VARIANTS) dropEntry(env, variants.shift() as string);
          entries.putSync(url, { kind: 'vary', names: varyNames, variants });
          entries.putSync(key, entry);
          indexTags(env, key, entry);
        }
        atime.putSync(url, Math.floor(Date.now() / 1000));
        return true;
      });
      if (!done) body.discard();
      return done;
    } catch (err) {
      this.writeFailed(err);
      body.discard();
      return false;
    }
  }

  async commitPiece(
    url: string,
    incoming: PartialEntry,
    writer: BodyWriter,
    combine: CombinePiece,
  ): Promise<PartialEntry | null> {
    const body = writer as LmdbBodyWriter;
    if (!(await body.finish())) {
      body.discard();
      return null;
    }
    const piece = { start: incoming.pieces[0].start, bodyId: body.id, size: body.size, chunks: body.chunks };
    const rec: PartialEntry = { ...incoming, bodyId: body.id, pieces: [{ ...piece, body: body.inline }] };
    const env = this.env;
    try {
      const stored = await env.entries.transaction(() => {
        const cur = env.entries.get(url);
        const next = combine(cur, rec);
        if (next === null) return null;
        if (cur?.kind === 'partial') {
          // The pieces kept stay where they are; the rest go, and the tags are indexed again from `next`.
          const kept = new Set(next.pieces.map((p) => p.bodyId));
          dropPieces(
            env,
            cur.pieces.filter((p) => !kept.has(p.bodyId)),
          );
          for (const tag of cur.tags ?? []) env.tags.removeSync(tag, url);
        } else dropEntry(env, url, cur);
        env.entries.putSync(url, next);
        indexTags(env, url, next);
        env.atime.putSync(url, Math.floor(Date.now() / 1000));
        return next;
      });
      if (stored === null) body.discard();
      return stored;
    } catch (err) {
      this.writeFailed(err);
      body.discard();
      return null;
    }
  }

  update(key: string, entry: StoredEntry): Promise<unknown> {
    return this.env.entries
      .transaction(() => {
        const cur = this.env.entries.get(key);
        // Only if nobody replaced the object meanwhile.
        if (cur?.kind === 'entry' && cur.bodyId === entry.bodyId) this.env.entries.putSync(key, entry);
      })
      .catch(this.writeFailed);
  }

  invalidate(url: string): Promise<boolean> {
    return this.env.entries
      .transaction(() => dropEntry(this.env, url))
      .catch((e) => {
        this.writeFailed(e);
        return false;
      });
  }

  async purge(what: { urls?: string[]; tags?: string[] }, soft: boolean): Promise<number> {
    const env = this.env;
    try {
      return await env.entries.transaction(() => {
        const keys = new Set<string>();
        for (const url of what.urls ?? []) {
          const rec = env.entries.get(url);
          if (rec?.kind === 'entry' || rec?.kind === 'partial') keys.add(url);
          else if (rec?.kind === 'vary') for (const v of rec.variants) keys.add(v);
        }
        for (const tag of what.tags ?? []) for (const key of env.tags.getValues(tag)) keys.add(key);
        let n = 0;
        for (const key of keys) {
          const rec = env.entries.get(key);
          if (rec === undefined || rec.kind === 'vary') continue;
          n++;
          if (soft) env.entries.putSync(key, staleNow(rec));
          else dropEntry(env, key, rec);
        }
        return n;
      });
    } catch (e) {
      this.writeFailed(e);
      return 0;
    }
  }

  summary(limit: number): StoreSummary {
    this.env.root.resetReadTxn();
    let objects = 0;
    let bytes = 0;
    const list: StoredEntry[] = [];
    for (const { value } of this.env.entries.getRange()) {
      // Partial entries count as objects with the bytes they hold; the listing shows complete ones.
      if (value.kind === 'vary') continue;
      objects++;
      bytes += storedBytes(value);
      if (value.kind === 'entry' && list.length < limit) list.push(value);
    }
    return { objects, bytes, list };
  }

  async close(): Promise<void> {
    clearInterval(this.snapshotTimer);
    await this.env.root.close();
  }
}

/** The version of what a key holds: an entry's or partial entry's bodyId. */
function recordId(rec: StoredRecord | undefined): string | undefined {
  return rec === undefined || rec.kind === 'vary' ? undefined : rec.bodyId;
}

function indexTags(env: CacheEnv, key: string, entry: StoredEntry | PartialEntry): void {
  for (const tag of entry.tags ?? []) env.tags.putSync(tag, key);
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** The worker's stores over the cache dir's LMDB environment. */
export function openLmdbStores(
  cacheDir: string,
  cacheSize: number,
  admission: { minUses: number; windowMs: number },
  log: Logger,
  /** Told of every failed write (the metrics count them). */
  onWriteFailed?: () => void,
): Stores {
  const env = openCacheEnv(cacheDir, cacheSize);
  const writeFailed = writeFailureReporter(log, onWriteFailed);
  const store = new LmdbStore(env, log, writeFailed);
  const recency = new LmdbRecency(env, writeFailed);
  return {
    store,
    admission: new LmdbAdmission(env, admission.minUses, admission.windowMs, writeFailed),
    claims: new LmdbClaims(env, writeFailed),
    recency,
    close: async () => {
      recency.close();
      await store.close();
    },
  };
}
