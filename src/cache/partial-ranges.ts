/**
 * The arithmetic of partial entries (RFC 9111 §3.3, §3.4), as pure functions: which bytes the pieces hold,
 * which a request still needs, which piece serves which bytes, and how a new piece joins the stored ones.
 */
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { coalesce, type Span } from '../http/ranges.js';
import type { PartialEntry, Piece, StoredEntry, StoredRecord } from '../store/store.js';
import { formatHttpDate, parseHttpDate } from './policy.js';

/** Pieces kept per partial entry; past it the newest piece starts the entry afresh (many tiny ranges). */
export const MAX_PIECES = 32;

const pieceEnd = (p: Piece) => p.start + p.size - 1;

/** The bytes the pieces hold, as sorted spans with overlapping and adjacent ones merged. */
export function heldSpans(pieces: readonly Piece[]): Span[] {
  return coalesce(pieces.map((p) => ({ start: p.start, end: pieceEnd(p) })));
}

/** The bytes of `wanted` not in `held` (both sorted and coalesced, as parseRanges and heldSpans give). */
export function missingSpans(wanted: readonly Span[], held: readonly Span[]): Span[] {
  const out: Span[] = [];
  for (const w of wanted) {
    let pos = w.start;
    for (const h of held) {
      if (h.end < pos) continue;
      if (h.start > w.end) break;
      if (h.start > pos) out.push({ start: pos, end: h.start - 1 });
      pos = h.end + 1;
      if (pos > w.end) break;
    }
    if (pos <= w.end) out.push({ start: pos, end: w.end });
  }
  return out;
}

/** Whether the pieces hold every byte of a representation of `size` bytes. */
export function holdsAll(pieces: readonly Piece[], size: number): boolean {
  return missingSpans([{ start: 0, end: size - 1 }], heldSpans(pieces)).length === 0;
}

/** Bytes `from`..`to` (absolute, inclusive) read from one piece. */
export interface Segment {
  piece: Piece;
  from: number;
  to: number;
}

/**
 * Which pieces serve `span`, in order: at each position the piece reaching furthest, so overlapping pieces
 * cost the fewest reads. Null when a byte of the span is not held.
 */
export function readPlan(pieces: readonly Piece[], span: Span): Segment[] | null {
  const out: Segment[] = [];
  let pos = span.start;
  while (pos <= span.end) {
    let best: Piece | undefined;
    for (const p of pieces)
      if (p.start <= pos && pieceEnd(p) >= pos && (best === undefined || pieceEnd(p) > pieceEnd(best)))
        best = p;
    if (best === undefined) return null;
    const to = Math.min(span.end, pieceEnd(best));
    out.push({ piece: best, from: pos, to });
    pos = to + 1;
  }
  return out;
}

/**
 * The pieces once `added` joins them: pieces it covers whole go (their bytes are in it); the new one is
 * always kept, so the store never holds a body no record lists. Sorted by start.
 */
export function withPiece(pieces: readonly Piece[], added: Piece): Piece[] {
  const kept = pieces.filter((p) => p.start < added.start || pieceEnd(p) > pieceEnd(added));
  if (kept.length >= MAX_PIECES) return [added];
  return [...kept, added].sort((a, b) => a.start - b.start);
}

type Validated = Pick<StoredEntry, 'etag' | 'lastModified' | 'headers'>;

/**
 * RFC 9110 §8.8.2.2: a Last-Modified a cache compares with its entry's is strong when that entry's Date is
 * at least one second after it.
 */
function strongLastModified(e: Validated): number | null {
  const date = parseHttpDate(fieldValue(e.headers, 'date'));
  return e.lastModified !== null && date !== null && date - e.lastModified >= 1 ? e.lastModified : null;
}

/** The strong validator to send in If-Range (RFC 9110 §13.1.5): the strong ETag, else a strong date. */
export function ifRangeValidator(e: Validated): string | undefined {
  if (e.etag !== undefined) return e.etag.startsWith('W/') ? undefined : e.etag;
  const lm = strongLastModified(e);
  return lm === null ? undefined : formatHttpDate(lm);
}

/**
 * RFC 9111 §3.4: pieces combine only when both responses have the same strong validator (RFC 9110 §8.8.1
 * strong comparison: both ETags strong and equal; or, with no ETag on either, the same strong
 * Last-Modified).
 */
export function sameStrongValidator(a: Validated, b: Validated): boolean {
  if (a.etag !== undefined || b.etag !== undefined)
    return a.etag !== undefined && !a.etag.startsWith('W/') && a.etag === b.etag;
  const lm = strongLastModified(a);
  return lm !== null && lm === strongLastModified(b);
}

/**
 * RFC 9111 §3.4: "use the header fields provided in the new response, aside from Content-Range, to replace
 * all instances of the corresponding header fields in the stored response" (Content-Range and
 * Content-Length are never stored with a piece).
 */
export function combinedHeaders(stored: RawHeaders, fresh: RawHeaders): RawHeaders {
  const names = new Set<string>();
  for (let i = 0; i < fresh.length; i += 2) names.add(fresh[i].toLowerCase());
  return [...filterFields(stored, (n) => !names.has(n)), ...fresh];
}

/**
 * How a newly received piece joins what the key holds (the store runs it in its write transaction):
 * - nothing, or a Vary index (the newer response has no Vary): the piece alone;
 * - a complete entry of the same representation (same strong validator and length): nothing to add, the
 *   piece is discarded; of another one: the newer response wins (§3.4 combines only matching ones);
 * - a partial entry of the same representation: combined, with the newest header section (§3.4);
 *   of another one: the newer response wins and the old pieces are dropped.
 */
export function combinePiece(current: StoredRecord | undefined, incoming: PartialEntry): PartialEntry | null {
  if (current === undefined || current.kind === 'vary') return incoming;
  const same = current.size === incoming.size && sameStrongValidator(current, incoming);
  if (current.kind === 'entry') return same ? null : incoming;
  if (!same) return incoming;
  return {
    ...incoming,
    headers: combinedHeaders(current.headers, incoming.headers),
    pieces: withPiece(current.pieces, incoming.pieces[0]),
  };
}
