/**
 * An in-memory CacheStore for tests of the cache stage in one process, with the same contract as the LMDB
 * store (test/store/contract.ts): nothing is visible before commit, commit publishes entry and Vary index
 * at once, update keeps the body, invalidate removes every variant.
 */
import type { RawHeaders } from '../http/fields.js';
import {
  type Admission,
  type BodySink,
  type BodyWriter,
  type CacheStore,
  CHUNK_SIZE,
  type CombinePiece,
  type Lookup,
  MAX_VARIANTS,
  type PartialEntry,
  type RevalidationClaims,
  type StoredEntry,
  type StoredRecord,
  type StoreSummary,
  type Stores,
  staleNow,
  storedBytes,
} from './store.js';
import { languageVariant, variantKey } from './variant-key.js';

class MemoryBodyWriter implements BodyWriter {
  /** Bodies get their id at commit here, and are never read before it: nothing streams from a fill. */
  readonly id = '';
  onChunk: ((n: number) => void) | null = null;
  size = 0;
  failed: string | null = null;
  readonly parts: Buffer[] = [];

  constructor(private readonly maxSize: number) {}

  write(chunk: Buffer): void {
    if (this.failed) return;
    this.size += chunk.length;
    if (this.size > this.maxSize) return this.fail('larger than max-object-size');
    this.parts.push(chunk);
  }

  fail(reason: string): void {
    this.failed ??= reason;
    this.parts.length = 0;
  }
}

export class MemoryStore implements CacheStore {
  readonly records = new Map<string, StoredRecord>();
  /** Bodies by id, as CHUNK_SIZE chunks like the LMDB store keeps them. */
  readonly bodies = new Map<string, Buffer[]>();
  private nextId = 0;

  lookup(url: string, reqHeaders: RawHeaders): Lookup {
    const rec = this.records.get(url);
    if (rec === undefined) return { miss: 'uri-miss' };
    if (rec.kind === 'entry') return { entry: rec, key: url };
    if (rec.kind === 'partial') return { miss: 'uri-miss', partial: rec };
    const key = variantKey(url, rec.names, reqHeaders);
    const entry = this.records.get(key);
    if (entry?.kind === 'entry') return { entry, key };
    const byLanguage = languageVariant(rec.names, reqHeaders, rec.variants, (k) => {
      const r = this.records.get(k);
      return r?.kind === 'entry' ? r : undefined;
    });
    return byLanguage ?? { miss: 'vary-miss' };
  }

  bodyComplete(e: StoredEntry): boolean {
    return e.chunks === 0 || this.bodies.get(e.bodyId)?.length === e.chunks;
  }

  readBody(entry: StoredEntry, start: number, end: number, sink: BodySink): void {
    if (entry.body !== null || entry.chunks === 0) {
      const body = entry.body ?? Buffer.alloc(0);
      sink.end(body.subarray(start, end + 1));
      return;
    }
    const chunks = this.bodies.get(entry.bodyId);
    let i = Math.floor(start / CHUNK_SIZE);
    const last = Math.floor(end / CHUNK_SIZE);
    let gone = false;
    sink.onGone(() => {
      gone = true;
    });
    const pump = (): void => {
      while (!gone && i <= last) {
        const chunk = chunks?.[i];
        if (chunk === undefined) return sink.abort('stored body chunk missing');
        const base = i * CHUNK_SIZE;
        const piece = chunk.subarray(Math.max(0, start - base), Math.min(chunk.length, end - base + 1));
        i++;
        if (!sink.write(piece, pump)) return;
      }
      if (!gone) sink.end();
    };
    pump();
  }

  /** One process, no snapshots: every read sees the latest commit. */
  renewSnapshot(): void {}

  readChunk(bodyId: string, n: number): Buffer | undefined {
    return this.bodies.get(bodyId)?.[n];
  }

  writer(maxSize: number): BodyWriter {
    return new MemoryBodyWriter(maxSize);
  }

  async commit(
    url: string,
    varyNames: string[] | null,
    reqHeaders: RawHeaders,
    entry: StoredEntry,
    writer: BodyWriter,
    replaces?: string,
  ): Promise<boolean> {
    const w = writer as MemoryBodyWriter;
    if (w.failed) return false;
    const cur = this.records.get(url);
    if (replaces !== undefined && (cur?.kind === 'vary' ? undefined : cur?.bodyId) !== replaces) return false;
    Object.assign(entry, this.keep(w));
    if (varyNames === null) {
      this.drop(url);
      this.records.set(url, entry);
      return true;
    }
    const key = variantKey(url, varyNames, reqHeaders);
    const prev = this.records.get(url);
    let variants: string[] = [];
    if (prev?.kind === 'vary' && prev.names.join() === varyNames.join())
      variants = prev.variants.filter((v) => v !== key);
    else this.drop(url);
    this.drop(key);
    variants.push(key);
    while (variants.length > MAX_VARIANTS) this.drop(variants.shift() as string);
    this.records.set(url, { kind: 'vary', names: varyNames, variants });
    this.records.set(key, entry);
    return true;
  }

  /** A written body as chunks like the LMDB store's (one inline buffer up to CHUNK_SIZE). */
  private keep(w: MemoryBodyWriter): Pick<StoredEntry, 'bodyId' | 'size' | 'chunks' | 'body'> {
    const all = Buffer.concat(w.parts);
    const bodyId = `m${++this.nextId}`;
    if (all.length <= CHUNK_SIZE) return { bodyId, size: all.length, chunks: 0, body: all };
    const chunks: Buffer[] = [];
    for (let off = 0; off < all.length; off += CHUNK_SIZE) chunks.push(all.subarray(off, off + CHUNK_SIZE));
    this.bodies.set(bodyId, chunks);
    return { bodyId, size: all.length, chunks: chunks.length, body: null };
  }

  async commitPiece(
    url: string,
    incoming: PartialEntry,
    writer: BodyWriter,
    combine: CombinePiece,
  ): Promise<PartialEntry | null> {
    const w = writer as MemoryBodyWriter;
    if (w.failed) return null;
    const piece = { start: incoming.pieces[0].start, ...this.keep(w) };
    const cur = this.records.get(url);
    const next = combine(cur, { ...incoming, bodyId: piece.bodyId, pieces: [piece] });
    if (next === null) {
      this.bodies.delete(piece.bodyId);
      return null;
    }
    if (cur?.kind === 'partial') {
      const kept = new Set(next.pieces.map((p) => p.bodyId));
      for (const p of cur.pieces) if (!kept.has(p.bodyId)) this.bodies.delete(p.bodyId);
    } else this.drop(url);
    this.records.set(url, next);
    return next;
  }

  async update(key: string, entry: StoredEntry): Promise<unknown> {
    const cur = this.records.get(key);
    if (cur?.kind === 'entry' && cur.bodyId === entry.bodyId) this.records.set(key, entry);
    return undefined;
  }

  async invalidate(url: string): Promise<boolean> {
    return this.drop(url);
  }

  async purge(what: { urls?: string[]; tags?: string[] }, soft: boolean): Promise<number> {
    const keys = new Set<string>();
    for (const url of what.urls ?? []) {
      const rec = this.records.get(url);
      if (rec?.kind === 'entry' || rec?.kind === 'partial') keys.add(url);
      else if (rec?.kind === 'vary') for (const v of rec.variants) if (this.records.has(v)) keys.add(v);
    }
    const tags = new Set(what.tags ?? []);
    if (tags.size > 0)
      for (const [key, rec] of this.records)
        if (rec.kind !== 'vary' && rec.tags?.some((t) => tags.has(t))) keys.add(key);
    for (const key of keys) {
      const rec = this.records.get(key);
      if (rec === undefined || rec.kind === 'vary') continue;
      if (soft) this.records.set(key, staleNow(rec));
      else this.drop(key);
    }
    return keys.size;
  }

  private drop(key: string): boolean {
    const rec = this.records.get(key);
    if (rec === undefined) return false;
    if (rec.kind === 'vary') for (const v of rec.variants) this.drop(v);
    else if (rec.kind === 'partial') for (const p of rec.pieces) this.bodies.delete(p.bodyId);
    else this.bodies.delete(rec.bodyId);
    this.records.delete(key);
    return true;
  }

  summary(limit: number): StoreSummary {
    const list: StoredEntry[] = [];
    let objects = 0;
    let bytes = 0;
    for (const rec of this.records.values()) {
      // Partial entries count as objects with the bytes they hold; the listing shows complete ones.
      if (rec.kind === 'vary') continue;
      objects++;
      bytes += storedBytes(rec);
      if (rec.kind === 'entry' && list.length < limit) list.push(rec);
    }
    return { objects, bytes, list };
  }

  async close(): Promise<void> {}
}

/** min-uses counted in this process only. */
class MemoryAdmission implements Admission {
  private readonly uses = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly minUses: number,
    private readonly windowMs: number,
  ) {}

  admit(key: string): boolean {
    if (this.minUses <= 1) return true;
    const now = Date.now();
    const u = this.uses.get(key);
    const count = u && now - u.since <= this.windowMs ? u.count + 1 : 1;
    if (count >= this.minUses) {
      this.uses.delete(key);
      return true;
    }
    this.uses.set(key, { count, since: u && count > 1 ? u.since : now });
    return false;
  }
}

class MemoryClaims implements RevalidationClaims {
  private readonly claims = new Map<string, number>();

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const since = this.claims.get(key);
    if (since !== undefined && Date.now() - since < ttlMs) return false;
    this.claims.set(key, Date.now());
    return true;
  }

  release(key: string): void {
    this.claims.delete(key);
  }
}

export function memoryStores(admission = { minUses: 1, windowMs: 600_000 }): Stores & { store: MemoryStore } {
  return {
    store: new MemoryStore(),
    admission: new MemoryAdmission(admission.minUses, admission.windowMs),
    claims: new MemoryClaims(),
    recency: { touch: () => {} },
    close: async () => {},
  };
}
