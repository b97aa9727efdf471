/**
 * Partial content (RFC 9111 §3.3, §3.4; RFC 9110 §14): a 206 the cache forwarded is stored as a piece of a
 * partial entry; a range request inside the stored pieces is answered from them; one that needs more asks
 * the origin for the missing bytes only (with If-Range, so that they combine only with the same
 * representation) and is answered from the pieces once the new one is stored; pieces that cover the whole
 * representation become a complete entry. The arithmetic is in partial-ranges.ts, the storage in the store.
 */
import type { ServerResponse } from 'node:http';
import { parseContentRange, rangeValue } from '../http/content-range.js';
import { upstreamError } from '../http/errors.js';
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { ifRangeAllows, parseRanges, type Span } from '../http/ranges.js';
import {
  type BodySink,
  type CacheStore,
  type PartialEntry,
  pieceBody,
  type StoredEntry,
} from '../store/store.js';
import { NULL_SINK, TeeSink } from '../upstream/sinks.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheStatus } from './cache-status.js';
import { NO_LEAD } from './collapse.js';
import { type CacheContext, nowSeconds } from './context.js';
import { deliverStored, readInSequence, reusedHeaders, sendRange } from './hit.js';
import { selectingFields } from './key.js';
import {
  fetchMiss,
  forward,
  originOf,
  type StoreTee,
  type StoringRequest,
  storing,
  storingEntry,
  storingRequest,
  toClient,
} from './miss.js';
import {
  combinePiece,
  heldSpans,
  holdsAll,
  ifRangeValidator,
  missingSpans,
  readPlan,
} from './partial-ranges.js';
import { clientConditionalMatches, currentAge, type RequestDirectives, reuse, varyNames } from './policy.js';

/** Request fields replaced when only the missing bytes are asked for: the range is ours, and so is If-Range. */
const RANGE_REQUEST_FIELDS = new Set([
  'range',
  'if-range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
]);

/**
 * The storing decision for a 206 (the hook in miss.ts `storing`): a piece is stored when the response is
 * storable under the rules of the complete response it is part of (§3.3: the same storability and
 * freshness rules as a 200, and the size limits applied to the complete length), it carries one range with
 * a known complete length (`bytes a-b/N`, not `*`), and it has no Vary (partial entries are kept for
 * unvaried URLs only). A multipart/byteranges 206 carries no Content-Range of its own: it is not stored
 * (§3.3 allows a cache not to; its parts would have to be parsed out of the body on its way to the client).
 */
export function storingPiece(
  cx: CacheContext,
  rq: StoringRequest,
  raw: RawHeaders,
  requestTime: number,
  cs: CacheStatus,
): StoreTee | null {
  const range = parseContentRange(fieldValue(raw, 'content-range'));
  if (range === null) {
    cs.detail = 'not stored: not a single range of a known length';
    return null;
  }
  if (selectingFields(varyNames(raw), cx.keyHeaders) !== null) {
    cs.detail = 'not stored: partial content with Vary';
    return null;
  }
  const whole = [
    ...filterFields(raw, (n) => n !== 'content-length'),
    'Content-Length',
    String(range.complete),
  ];
  const entry = storingEntry(cx, rq, 200, whole, requestTime, cs);
  if (entry === null) return null;
  const incoming: PartialEntry = {
    ...entry,
    kind: 'partial',
    status: 206,
    headers: filterFields(entry.headers, (n) => n !== 'content-range'),
    size: range.complete,
    pieces: [{ start: range.start, bodyId: '', size: 0, chunks: 0, body: null }],
  };
  const length = range.end - range.start + 1;
  const store = cx.stores.store;
  return {
    sink: (next, settled) => {
      // Bounded by the range's length: more bytes than Content-Range announced fail the writer.
      const writer = store.writer(length);
      return new TeeSink(
        writer,
        next,
        async () => {
          // A body that ended cleanly but short (chunked framing) is not the range it claims to be.
          if (writer.size !== length) writer.fail('shorter than its Content-Range');
          const stored = await store.commitPiece(rq.key, incoming, writer, combinePiece);
          if (stored !== null && holdsAll(stored.pieces, stored.size)) await complete(cx, rq.key, stored);
          return stored !== null;
        },
        settled,
      );
    },
  };
}

/**
 * Pieces that hold the whole representation become a complete entry (status 200, Content-Length, the
 * newest header section): its body copied from the pieces, committed only if nothing replaced the partial
 * entry meanwhile. The copy yields to the event loop between chunks.
 */
async function complete(cx: CacheContext, key: string, p: PartialEntry): Promise<void> {
  const store = cx.stores.store;
  const writer = store.writer(cx.maxObjectSize);
  const copied = await new Promise<boolean>((resolve) =>
    readPieces(
      store,
      p,
      { start: 0, end: p.size - 1 },
      {
        write: (chunk, resume) => {
          writer.write(chunk);
          setImmediate(resume);
          return false;
        },
        end: (last) => {
          if (last) writer.write(last);
          resolve(true);
        },
        abort: (reason) => {
          writer.fail(reason);
          resolve(false);
        },
        onGone: () => {},
      },
    ),
  );
  if (!copied) return;
  const { pieces: _pieces, ...meta } = p;
  const entry: StoredEntry = {
    ...meta,
    kind: 'entry',
    status: 200,
    headers: [...p.headers, 'Content-Length', String(p.size)],
  };
  if (!(await store.commit(key, null, [], entry, writer, p.bodyId)))
    cx.log.debug({ url: key }, 'partial entry not completed: replaced meanwhile, or the write failed');
}

/** Hands bytes `span` of a partial entry to `sink`, piece after piece; aborts it when a byte is not held. */
function readPieces(store: CacheStore, p: PartialEntry, span: Span, sink: BodySink): void {
  const plan = readPlan(p.pieces, span);
  if (plan === null) return sink.abort('range not held');
  readInSequence(
    plan.length,
    (i, part) => {
      const { piece, from, to } = plan[i];
      store.readBody(pieceBody(p, piece), from - piece.start, to - piece.start, part);
    },
    sink,
  );
}

/** The partial entry as the range responder sees it: the representation's size, its validators. */
const asEntry = (p: PartialEntry): StoredEntry => ({ ...p, kind: 'entry' });

/**
 * A GET with Range whose URL holds a partial entry (serve.ts calls this on a miss that found one). Answers
 * from the pieces when they hold every byte asked for (a hit); otherwise asks the origin for the one
 * contiguous missing range, or for the request's own ranges when more are missing (a miss, fwd=partial).
 * False when the request wants the whole representation (no Range, or If-Range that fails) or the client's
 * own validators: then it is an ordinary miss, whose 200 replaces the partial entry.
 */
export function servePartial(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  p: PartialEntry,
): boolean {
  const raw = txn.req.rawHeaders;
  if (txn.method !== 'GET') return false;
  const ranges = parseRanges(fieldValue(raw, 'range'), p.size);
  if (ranges === null) return false;
  if (!ifRangeAllows(fieldValue(raw, 'if-range'), p.etag, fieldValue(p.headers, 'last-modified')))
    return false;
  if (clientConditionalMatches(raw, p)) return false;
  const rd = txn.directives as RequestDirectives;
  const age = currentAge(p.initialAge, p.responseTime, nowSeconds());
  const r = reuse(p.policy, age, rd);
  // Stale pieces (or a client's no-cache) are not reused as they are; the request goes to the origin, and a
  // 206 of the same representation combines with them again (§3.4) under its fresh header section.
  if (r.kind !== 'fresh' && r.kind !== 'stale-ok') return fetchAsSent(cx, txn, res, rd);
  const wanted = ranges === 'unsatisfiable' ? [] : ranges;
  const missing = missingSpans(wanted, heldSpans(p.pieces));
  if (missing.length === 0) {
    const store = cx.stores.store;
    // Squid's TCP_SWAPFAIL_MISS, as for complete entries: a piece that cannot be read whole is not served.
    if (!p.pieces.every((piece) => store.bodyComplete(pieceBody(p, piece)))) {
      cx.log.error({ url: p.url }, 'stored piece incomplete: dropping the partial entry');
      void store.invalidate(txn.key);
      return false;
    }
    cx.stores.recency.touch(txn.key);
    txn.outcome = 'hit';
    txn.cache = { hit: true, ttl: p.policy.lifetime - age };
    return deliverPieces(cx, txn, res, p, age);
  }
  if (rd.onlyIfCached) return false;
  const validator = ifRangeValidator(p);
  // Only the missing bytes when they are one range other than the request's own, and the origin can be
  // asked for them under a strong validator; otherwise the request as sent.
  const own = wanted.length === 1 && wanted[0].start === missing[0].start && wanted[0].end === missing[0].end;
  if (missing.length !== 1 || own || validator === undefined) return fetchAsSent(cx, txn, res, rd);
  fetchMissing(cx, txn, res, missing[0], validator);
  return true;
}

/** The client's ranges answered from the pieces, through the same responder as complete entries. */
function deliverPieces(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  p: PartialEntry,
  age: number,
) {
  const store = cx.stores.store;
  const headers = reusedHeaders(p, String(Math.floor(age)));
  return sendRange(cx, txn, res, asEntry(p), headers, (start, end, sink) =>
    readPieces(store, p, { start, end }, sink),
  );
}

/** The request goes to the origin as the client sent it; a 206 back is stored as a piece (miss.ts). */
function fetchAsSent(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  rd: RequestDirectives,
): boolean {
  if (rd.onlyIfCached) return false;
  fetchMiss(cx, txn, res, 'partial');
  return true;
}

/**
 * Asks the origin for `span` only, with If-Range: the stored strong validator (RFC 9110 §13.1.5), so that a
 * changed representation comes back whole (200, which goes to the client and is stored as usual) instead
 * of as bytes that would not combine. A matching 206 is stored as a piece; the client is then answered
 * from the pieces. Anything that leaves its ranges unheld falls back to the request as sent.
 */
function fetchMissing(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  span: Span,
  validator: string,
) {
  const requestTime = nowSeconds();
  const cs: CacheStatus = { fwd: 'partial' };
  txn.outcome = 'miss';
  txn.cache = cs;
  const up = cx.upstreamRequest(txn);
  const headers = filterFields(up.headers, (n) => !RANGE_REQUEST_FIELDS.has(n));
  headers.push('Range', rangeValue(span), 'If-Range', validator);
  const again = () => {
    if (res.destroyed) return;
    const found = cx.stores.store.lookup(txn.key, txn.req.rawHeaders);
    const age = (e: StoredEntry | PartialEntry) => currentAge(e.initialAge, e.responseTime, nowSeconds());
    // Completed meanwhile: the ranges come from the complete entry.
    if ('entry' in found) return deliverStored(cx, txn, res, found.entry, age(found.entry));
    const p = found.partial;
    const ranges = p && parseRanges(fieldValue(txn.req.rawHeaders, 'range'), p.size);
    if (p && Array.isArray(ranges) && missingSpans(ranges, heldSpans(p.pieces)).length === 0)
      if (deliverPieces(cx, txn, res, p, age(p))) return;
    fetchMiss(cx, txn, res, 'partial', 'missing range not stored');
  };
  forward(
    cx,
    txn,
    res,
    {
      onHead: (status, raw) => {
        if (status !== 206) return toClient(cx, txn, res, status, raw, requestTime, NO_LEAD);
        cs.fwdStatus = status;
        txn.upstreamStatus = status;
        const tee = storing(cx, storingRequest(txn), status, raw, requestTime, cs);
        if (tee === null) {
          setImmediate(again);
          return NULL_SINK;
        }
        return tee.sink(NULL_SINK, again);
      },
      onError: (err) => cx.respond.error(txn, res, upstreamError(err, originOf(txn))),
    },
    { ...up, headers },
  );
}
