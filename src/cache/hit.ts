/**
 * A stored response to the client: a 304 for its own matching conditional (RFC 9111 §4.3.2), no body for
 * HEAD, the qualified no-cache fields left out (§5.2.2.4), byte ranges (RFC 9110 §14), otherwise
 * the whole body as the store hands it out.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { byterangesParts, ifRangeAllows, parseRanges } from '../http/ranges.js';
import type { BodySink, StoredEntry } from '../store/store.js';
import { ClientSink } from '../upstream/sinks.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheContext } from './context.js';
import { clientConditionalMatches, NOT_MODIFIED_FIELDS } from './policy.js';

export function deliverStored(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  e: StoredEntry,
  age: number,
): void {
  const ageText = String(Math.floor(age));
  const req = txn.req;
  if (clientConditionalMatches(req.rawHeaders, e)) {
    const h = filterFields(e.headers, (n) => NOT_MODIFIED_FIELDS.has(n));
    h.push('Age', ageText);
    cx.respond.head(txn, res, 304, h);
    res.end();
    return;
  }
  const h = reusedHeaders(e, ageText);
  if (txn.method === 'GET' && e.status === 200 && sendRange(cx, txn, res, e, h)) return;
  cx.respond.head(txn, res, e.status, h);
  // Squid's TCP_MEM_HIT: a body kept inside the entry record itself, read with the entry.
  txn.memory = e.body !== null;
  if (txn.method === 'HEAD') res.end();
  else cx.stores.store.readBody(e, 0, e.size - 1, new ClientSink(res));
}

/** The stored header section as reused (§5.2.2.4: the qualified no-cache fields left out), with Age. */
export function reusedHeaders(e: Pick<StoredEntry, 'headers' | 'noCacheFields'>, age: string): RawHeaders {
  const h =
    e.noCacheFields.length > 0
      ? filterFields(e.headers, (n) => !e.noCacheFields.includes(n))
      : e.headers.slice();
  h.push('Age', age);
  return h;
}

/** Hands bytes `start`..`end` (inclusive) of a representation to a sink: a stored body, or pieces of one. */
export type RangeReader = (start: number, end: number, sink: BodySink) => void;

/**
 * RFC 9110 §14: byte ranges answered from the stored body (or `read`, a partial entry's pieces): one range
 * as a 206 with Content-Range, several as a 206 multipart/byteranges (§14.6), none satisfiable as 416.
 * False when the request is to get the whole representation instead (no Range, or an If-Range that fails).
 */
export function sendRange(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  e: StoredEntry,
  headers: RawHeaders,
  read: RangeReader = (start, end, sink) => cx.stores.store.readBody(e, start, end, sink),
): boolean {
  const raw = txn.req.rawHeaders;
  const ranges = parseRanges(fieldValue(raw, 'range'), e.size);
  if (ranges === null) return false;
  if (!ifRangeAllows(fieldValue(raw, 'if-range'), e.etag, fieldValue(e.headers, 'last-modified')))
    return false;
  const h = filterFields(headers, (n) => n !== 'content-length');
  if (ranges === 'unsatisfiable') {
    h.push('Content-Range', `bytes */${e.size}`, 'Content-Length', '0');
    cx.respond.head(txn, res, 416, h);
    res.end();
    return true;
  }
  if (ranges.length === 1) {
    const { start, end } = ranges[0];
    h.push('Content-Range', `bytes ${start}-${end}/${e.size}`, 'Content-Length', String(end - start + 1));
    cx.respond.head(txn, res, 206, h);
    read(start, end, new ClientSink(res));
    return true;
  }
  const boundary = randomBytes(12).toString('hex');
  const parts = byterangesParts(ranges, e.size, fieldValue(e.headers, 'content-type'), boundary);
  const mh = filterFields(h, (n) => n !== 'content-type');
  mh.push(
    'Content-Type',
    `multipart/byteranges; boundary=${boundary}`,
    'Content-Length',
    String(parts.length),
  );
  cx.respond.head(txn, res, 206, mh);
  readInSequence(
    ranges.length,
    (i, sink) => read(ranges[i].start, ranges[i].end, sink),
    new ClientSink(res),
    (i) => Buffer.from(parts.heads[i]),
    Buffer.from(parts.tail),
  );
  return true;
}

/**
 * Several reads one after the other into one sink, each through the store's reader with back-pressure:
 * `read(i, sink)` hands part i to the sink it is given, `before(i)` goes ahead of it and `tail` after the
 * last. A receiver that leaves stops the part being read.
 */
export function readInSequence(
  n: number,
  read: (i: number, sink: BodySink) => void,
  out: BodySink,
  before?: (i: number) => Buffer,
  tail?: Buffer,
): void {
  let stopPart: (() => void) | null = null;
  out.onGone(() => stopPart?.());
  const part = (i: number): void => {
    if (i === n) return out.end(tail);
    if (before) out.write(before(i), () => {});
    read(i, {
      write: (chunk, resume) => out.write(chunk, resume),
      end: (last) => {
        if (last) out.write(last, () => {});
        part(i + 1);
      },
      abort: (reason) => out.abort(reason),
      onGone: (gone) => {
        stopPart = gone;
      },
    });
  };
  part(0);
}
