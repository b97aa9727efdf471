/**
 * A stored response to the client: a 304 for its own matching conditional (RFC 9111 §4.3.2), no body for
 * HEAD, the qualified no-cache fields left out (§5.2.2.4), a single byte range (RFC 9110 §14), otherwise
 * the whole body as the store hands it out.
 */
import type { ServerResponse } from 'node:http';
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { ifRangeAllows, parseRange } from '../http/ranges.js';
import type { StoredEntry } from '../store/store.js';
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
  const h =
    e.noCacheFields.length > 0
      ? filterFields(e.headers, (n) => !e.noCacheFields.includes(n))
      : e.headers.slice();
  h.push('Age', ageText);
  if (txn.method === 'GET' && e.status === 200 && sendRange(cx, txn, res, e, h)) return;
  cx.respond.head(txn, res, e.status, h);
  // Squid's TCP_MEM_HIT: a body kept inside the entry record itself, read with the entry.
  txn.memory = e.body !== null;
  if (txn.method === 'HEAD') res.end();
  else cx.stores.store.readBody(e, 0, e.size - 1, new ClientSink(res));
}

/** RFC 9110 §14: a single byte range answered from the stored body (206, or 416 when unsatisfiable). */
function sendRange(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  e: StoredEntry,
  headers: RawHeaders,
): boolean {
  const raw = txn.req.rawHeaders;
  const range = parseRange(fieldValue(raw, 'range'), e.size);
  if (range === null) return false;
  if (!ifRangeAllows(fieldValue(raw, 'if-range'), e.etag, fieldValue(e.headers, 'last-modified')))
    return false;
  const h = filterFields(headers, (n) => n !== 'content-length');
  if (range === 'unsatisfiable') {
    h.push('Content-Range', `bytes */${e.size}`, 'Content-Length', '0');
    cx.respond.head(txn, res, 416, h);
    res.end();
    return true;
  }
  const { start, end } = range;
  h.push('Content-Range', `bytes ${start}-${end}/${e.size}`, 'Content-Length', String(end - start + 1));
  cx.respond.head(txn, res, 206, h);
  cx.stores.store.readBody(e, start, end, new ClientSink(res));
  return true;
}
