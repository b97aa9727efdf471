/**
 * The cache store as the cache stage sees it: entries and their body chunks, nothing of HTTP delivery.
 * Two implementations: `lmdb/lmdb-store.ts` (the shared, persistent one) and `memory-store.ts` (for tests of
 * the cache stage in one process). `test/store/contract.ts` is the suite both must pass.
 *
 * An entry's life (every implementation keeps it):
 *   writer()  → chunks written as the response streams; nothing is visible yet
 *   commit()  → entry and Vary index published at once, after every chunk; readers see all or nothing
 *   update()  → a 304 replaces the header section and times, the body stays (only if the body is unchanged)
 *   invalidate() / eviction → the entry, its variants and its chunks go
 *   abandoned writes (a crash, an abort) leave unreferenced chunks, which the sweeper removes
 *
 * A partial entry (RFC 9111 §3.3, a stored 206) lives at the same key as a complete one would, so a URL holds
 * one or the other, and invalidation, purge, eviction and the tag index treat both alike:
 *   commitPiece() → a new byte range is published with the ones already held, or replaces them
 *   commit() of a complete response → replaces the partial entry (and with `replaces`, completes it)
 */
import type { StoredPolicy } from '../cache/policy.js';
import type { RawHeaders } from '../http/fields.js';

/** A stored response: metadata, and the body inline (small) or as numbered chunks. */
export interface StoredEntry {
  kind: 'entry';
  url: string;
  status: number;
  /** End-to-end response fields as stored, our Via appended, Content-Length exact, no Age. */
  headers: string[];
  requestTime: number;
  responseTime: number;
  initialAge: number;
  policy: StoredPolicy;
  noCacheFields: string[];
  etag: string | undefined;
  lastModified: number | null;
  bodyId: string;
  size: number;
  chunks: number;
  /** Bodies up to INLINE_MAX live here, so a small hit is one read. */
  body: Buffer | null;
  /** Purge tags from Surrogate-Key / Cache-Tag (absent in entries stored before tags existed). */
  tags?: string[];
}

/**
 * One byte range of a partial entry, stored as its own body: its own id, its chunks CHUNK_SIZE long counted
 * from the piece's first byte (an upstream range starts anywhere, so absolute chunk alignment would need
 * read-modify-write of the chunks two pieces share). A piece is written whole or not at all, like a body.
 */
export interface Piece {
  /** Offset of its first byte in the representation. */
  start: number;
  bodyId: string;
  size: number;
  chunks: number;
  body: Buffer | null;
}

/**
 * A stored 206 (RFC 9111 §3.3): the metadata of the newest piece's response (its header section without
 * Content-Range and Content-Length, times, freshness, validators, tags) and the byte ranges held. `size` is
 * the representation's complete length, `status` 206, `bodyId` the newest piece's (the record's version, as
 * an entry's bodyId is), `chunks` 0 and `body` null: the bytes are in `pieces`, sorted by start.
 */
export interface PartialEntry extends Omit<StoredEntry, 'kind'> {
  kind: 'partial';
  pieces: Piece[];
}

/**
 * How a new piece joins what the key holds (RFC 9111 §3.4): the record to store, or null to discard the
 * piece. Run inside the store's write transaction, so it sees the latest record.
 */
export type CombinePiece = (current: StoredRecord | undefined, incoming: PartialEntry) => PartialEntry | null;

/** Under a URL whose response had Vary: the field names and the variants stored. */
export interface VaryIndex {
  kind: 'vary';
  names: string[];
  /** Secondary keys of stored variants, newest last. */
  variants: string[];
}

/**
 * Bodies up to this size are stored inside the entry, so such a hit is a single read. Workers keep decoded
 * entries, inline bodies with them (lmdb/decoded-entries.ts): a small bound keeps that memory small, and
 * larger bodies are read from the map chunk by chunk.
 */
/** What a key holds. */
export type StoredRecord = StoredEntry | VaryIndex | PartialEntry;

export const INLINE_MAX = 16 * 1024;
/** Body chunks are exactly this size (the last one shorter), so a range starts at a computable chunk. */
export const CHUNK_SIZE = 256 * 1024;
/** Variants kept per URL; the oldest goes first. */
export const MAX_VARIANTS = 32;

/** A miss may find a partial entry at the key: enough for a range request, not for a whole one. */
export type Lookup =
  | { entry: StoredEntry; key: string }
  | { miss: 'uri-miss' | 'vary-miss'; partial?: PartialEntry };

/**
 * Where bytes go: the client, a tee into the store, or nowhere. Both the store (a stored body) and the
 * upstream (a response body) write to one.
 */
export interface BodySink {
  /** Returns false when the receiver wants no more for now; it then calls `resume` once it does. */
  write(chunk: Buffer, resume: () => void): boolean;
  /** The body is whole; `last` is its final piece (a small hit is then a single write). */
  end(last?: Buffer): void;
  /** The body cannot be delivered whole: the receiver must not take what it got for complete. */
  abort(reason: string): void;
  /** Calls `gone` if the receiver goes away before the end (a client hanging up). */
  onGone(gone: () => void): void;
}

/** Collects a body as it streams, for `commit`. */
export interface BodyWriter {
  /** The body's id (an entry's bodyId once committed): collapsed waiters read its chunks by it. */
  readonly id: string;
  readonly size: number;
  /** Told of each chunk once it is committed (in order), for collapsed waiters to stream while it fills. */
  onChunk: ((n: number) => void) | null;
  write(chunk: Buffer): void;
  /** Abandons the body: what was written is removed, and `commit` will refuse it. */
  fail(reason: string): void;
}

export interface StoreSummary {
  objects: number;
  bytes: number;
  list: StoredEntry[];
}

export interface CacheStore {
  /** RFC 9111 §4.1: the primary key, then the variant selected by the stored Vary fields. */
  lookup(url: string, reqHeaders: RawHeaders): Lookup;
  /** Whether every body chunk of an entry is there (a damaged store must not serve a short body). */
  bodyComplete(entry: StoredEntry): boolean;
  /** Hands bytes `start`..`end` (inclusive) of a stored body to `sink`, honouring its back-pressure. */
  readBody(entry: StoredEntry, start: number, end: number, sink: BodySink): void;
  writer(maxSize: number): BodyWriter;
  /**
   * Looks at the newest commits from now on: a process's read snapshot may predate another's commit (a
   * collapsed waiter told that its fill is stored must not find the stale entry it waited behind).
   */
  renewSnapshot(): void;
  /** A committed chunk of a body still being written or stored (collapsed forwarding), or undefined. */
  readChunk(bodyId: string, n: number): Buffer | undefined;
  /**
   * Publishes `entry` with the writer's body; resolves false (and cleans up) when it could not. With
   * `replaces`, only if the record at `url` is still the one with that bodyId (a partial entry completed).
   */
  commit(
    url: string,
    varyNames: string[] | null,
    reqHeaders: RawHeaders,
    entry: StoredEntry,
    body: BodyWriter,
    replaces?: string,
  ): Promise<boolean>;
  /**
   * Publishes the writer's body as the one piece of `incoming`, joined by `combine` with what `url` holds
   * (pieces the result no longer lists are removed). Resolves with the stored record, or null when the
   * piece was discarded or could not be written.
   */
  commitPiece(
    url: string,
    incoming: PartialEntry,
    body: BodyWriter,
    combine: CombinePiece,
  ): Promise<PartialEntry | null>;
  /** RFC 9111 §3.2: replaces a stored entry's header section and times, if its body is still the same. */
  update(key: string, entry: StoredEntry): Promise<unknown>;
  /** Removes a URL and every variant of it. Resolves with whether anything was stored. */
  invalidate(url: string): Promise<boolean>;
  /**
   * Purges by URL (every variant) and by tag (every entry carrying one of them): removes them, or with
   * `soft` marks them stale so that they are revalidated (and may still be served stale). Resolves with how
   * many stored responses were affected; a tag costs its own entries, not a scan of the store.
   */
  purge(what: { urls?: string[]; tags?: string[] }, soft: boolean): Promise<number>;
  /** For the cache manager: stored responses and their bytes, and the first `limit` entries. */
  summary(limit: number): StoreSummary;
  close(): Promise<void>;
}

/** nginx's proxy_cache_min_uses: whether this request for `key` is the one that may store it. */
export interface Admission {
  admit(key: string): boolean;
}

/** RFC 5861 §3 "once per object": who may revalidate a stale entry in the background, across workers. */
export interface RevalidationClaims {
  /** Resolves true for the one claimant that may go ahead; a claim older than `ttlMs` is presumed dead. */
  claim(key: string, ttlMs: number, seen: StoredEntry): Promise<boolean>;
  release(key: string): void;
}

/** Approximate recency for eviction; a hit never waits on it. */
export interface Recency {
  touch(key: string): void;
}

/** What the cache stage is given: the store and the small policies beside it. */
export interface Stores {
  store: CacheStore;
  admission: Admission;
  claims: RevalidationClaims;
  recency: Recency;
  close(): Promise<void>;
}

/** A stored response marked stale at once (soft purge; a HEAD that contradicts it, RFC 9111 §4.3.5). */
export function staleNow<E extends StoredEntry | PartialEntry>(e: E): E {
  return { ...e, policy: { ...e.policy, lifetime: 0 } };
}

/** A piece of a partial entry as a body the store's readBody can read (offsets relative to the piece). */
export function pieceBody(p: PartialEntry, piece: Piece): StoredEntry {
  return {
    ...p,
    kind: 'entry',
    bodyId: piece.bodyId,
    size: piece.size,
    chunks: piece.chunks,
    body: piece.body,
  };
}

/** Bytes a record holds in the store, for the size bound. */
export function storedBytes(rec: StoredEntry | PartialEntry): number {
  if (rec.kind === 'entry') return rec.size;
  let n = 0;
  for (const piece of rec.pieces) n += piece.size;
  return n;
}
