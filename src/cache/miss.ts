/**
 * A miss: forward, and store while streaming when RFC 9111 §3 allows. The storing decision is made once
 * per response head from facts (key, request, status, fields), for a client's fetch and a background
 * revalidation alike.
 */
import type { ServerResponse } from 'node:http';
import { upstreamError } from '../http/errors.js';
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { responseHeaders } from '../http/respond.js';
import type { BodySink, StoredEntry } from '../store/store.js';
import { ClientSink, TeeSink } from '../upstream/sinks.js';
import type { Exchange } from '../upstream/upstream.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheStatus } from './cache-status.js';
import type { Release } from './collapse.js';
import { type CacheContext, nowSeconds } from './context.js';
import { withMaxStale } from './freshness-rules.js';
import { selectingFields } from './key.js';
import { storingPiece } from './partial.js';
import {
  formatHttpDate,
  freshnessLifetime,
  initialAge,
  noCacheFields,
  parseHttpDate,
  type RequestDirectives,
  type ResponseInfo,
  responseDirectives,
  storability,
  storedPolicy,
  unstoredFields,
  varyNames,
} from './policy.js';
import { responseTags, TAG_FIELDS, withoutTagFields } from './tags.js';

/** Never stored as received: Age is computed at delivery, Content-Length is set from the stored body. */
const NOT_STORED_FIELDS = new Set(['age', 'content-length']);

/** The request a response answers, as storing needs it. */
export interface StoringRequest {
  key: string;
  method: string;
  headers: RawHeaders;
  directives: RequestDirectives;
}

/** A response the store will take, once its body has streamed through. */
export interface StoreTee {
  sink(next: BodySink, settled: () => void): BodySink;
}

/**
 * The storing decision (RFC 9111 §3, the size limits, admission) and the entry to store, its body not yet
 * written; sets Cache-Status' detail, stored and ttl on `cs`. Null when the response is not stored.
 */
export function storingEntry(
  cx: CacheContext,
  rq: StoringRequest,
  status: number,
  raw: RawHeaders,
  requestTime: number,
  cs: CacheStatus,
): StoredEntry | null {
  const info: ResponseInfo = { status, headers: raw, requestTime, responseTime: nowSeconds() };
  const { cc, targeted } = responseDirectives(raw);
  const rule = cx.rules.rule(rq.key);
  const notStorable = storability(rq, status, raw, cc, {
    targeted,
    ignore: rule.ignore,
    setCookie: cx.setCookie,
  });
  const length = Number(fieldValue(raw, 'content-length') ?? Number.NaN);
  if (notStorable) cs.detail = `not stored: ${notStorable}`;
  else if (length > cx.maxObjectSize) cs.detail = 'not stored: larger than max-object-size';
  else if (length < cx.minObjectSize) cs.detail = 'not stored: smaller than minimum_object_size';
  else if (!cx.stores.admission.admit(rq.key)) cs.detail = 'not stored: min-uses';
  else {
    const lifetime = freshnessLifetime(info, cc, rule.heuristic);
    const entry = entryFrom(cx, rq.key, info, lifetime, cc, rule.maxStale);
    cs.stored = true;
    cs.ttl = lifetime - entry.initialAge;
    return entry;
  }
  return null;
}

/**
 * Whether and how a response is stored; sets Cache-Status' detail, stored and ttl on `cs`. Null when it is
 * not stored. A 206 is stored as a piece of a partial entry (partial.ts).
 */
export function storing(
  cx: CacheContext,
  rq: StoringRequest,
  status: number,
  raw: RawHeaders,
  requestTime: number,
  cs: CacheStatus,
): StoreTee | null {
  if (status === 206) return storingPiece(cx, rq, raw, requestTime, cs);
  const entry = storingEntry(cx, rq, status, raw, requestTime, cs);
  if (entry === null) return null;
  const store = cx.stores.store;
  const names = selectingFields(varyNames(raw), cx.keyHeaders);
  return {
    sink: (next, settled) => {
      const writer = store.writer(cx.maxObjectSize);
      return new TeeSink(
        writer,
        next,
        () => {
          entry.headers.push('Content-Length', String(writer.size));
          return store.commit(rq.key, names, rq.headers, entry, writer);
        },
        settled,
      );
    },
  };
}

function entryFrom(
  cx: CacheContext,
  key: string,
  info: ResponseInfo,
  lifetime: number,
  cc: ReturnType<typeof responseDirectives>['cc'],
  maxStale: number,
): StoredEntry {
  const unstored = unstoredFields(cc, cx.setCookie);
  const headers = filterFields(
    responseHeaders(info.headers, cx.respond.via),
    (n) => !NOT_STORED_FIELDS.has(n) && !unstored.has(n) && (cx.keepTagHeaders || !TAG_FIELDS.has(n)),
  );
  // RFC 9110 §6.6.1: a response stored without Date gets the time it was received.
  if (fieldValue(info.headers, 'date') === undefined)
    headers.push('Date', formatHttpDate(Math.floor(info.responseTime)));
  return {
    kind: 'entry',
    url: key,
    status: info.status,
    headers,
    requestTime: info.requestTime,
    responseTime: info.responseTime,
    initialAge: initialAge(info),
    policy: withMaxStale(storedPolicy(cc, lifetime), maxStale),
    noCacheFields: noCacheFields(cc),
    etag: fieldValue(info.headers, 'etag'),
    lastModified: parseHttpDate(fieldValue(info.headers, 'last-modified')),
    bodyId: '',
    size: 0,
    chunks: 0,
    body: null,
    tags: responseTags(info.headers),
  };
}

export function storingRequest(txn: Transaction): StoringRequest {
  return {
    key: txn.key,
    method: txn.method,
    headers: txn.req.rawHeaders,
    directives: txn.directives as RequestDirectives,
  };
}

/**
 * The response goes to the client, through the store when it is storable. `release` wakes collapsed
 * waiters: at once when the response will not be stored, after the commit when it will.
 */
export function toClient(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  status: number,
  raw: RawHeaders,
  requestTime: number,
  release: Release,
): BodySink {
  const cs = txn.cache as CacheStatus;
  cs.fwdStatus = status;
  txn.upstreamStatus = status;
  const tee = storing(cx, storingRequest(txn), status, raw, requestTime, cs);
  const out = responseHeaders(raw, cx.respond.via);
  cx.respond.head(txn, res, status, cx.keepTagHeaders ? out : withoutTagFields(out));
  const client = new ClientSink(res);
  if (tee === null) {
    if (txn.method === 'GET') cx.collapse.notStorable(txn.key);
    release();
    return client;
  }
  cx.collapse.storable(txn.key);
  return tee.sink(client, release);
}

/** Where the transaction was routed, for error messages. */
export const originOf = (txn: Transaction) => txn.route?.origin ?? '-';

/** Sends the transaction upstream for the client; a client that leaves cuts the exchange. */
export function forward(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  exchange: Exchange,
  up = cx.upstreamRequest(txn),
): void {
  txn.forwarded = true;
  const pending = cx.upstream.fetch(up, {
    ...exchange,
    onInterim: (status, raw) => cx.respond.interim(txn, res, status, raw),
  });
  res.once('close', () => {
    if (!res.writableFinished) pending.abort('client closed the connection');
  });
}

/** A miss: fetch, store while streaming when allowed, and lead the collapsed waiters for a GET. */
export function fetchMiss(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  fwd: NonNullable<CacheStatus['fwd']>,
  detail?: string,
): void {
  // Nothing to fetch for a client that is gone, and a leader with no client would never release its waiters.
  if (res.destroyed) return;
  const requestTime = nowSeconds();
  txn.cache = { fwd, detail };
  if (txn.outcome === 'none') txn.outcome = 'miss';
  const release = txn.method === 'GET' ? cx.collapse.lead(txn.key) : () => {};
  // A client that goes away before the response is decided must not strand the waiters.
  res.once('close', () => !res.writableFinished && release());
  forward(cx, txn, res, {
    onHead: (status, raw) => toClient(cx, txn, res, status, raw, requestTime, release),
    onError: (err) => {
      release();
      cx.respond.error(txn, res, upstreamError(err, originOf(txn)));
    },
  });
}

/** Not a cacheable method (OPTIONS, TRACE): forwarded as it is, with no Cache-Status. */
export function pass(cx: CacheContext, txn: Transaction, res: ServerResponse): void {
  txn.outcome = 'pass';
  forward(cx, txn, res, {
    onHead: (status, raw) => {
      txn.upstreamStatus = status;
      cx.respond.head(txn, res, status, responseHeaders(raw, cx.respond.via));
      return new ClientSink(res);
    },
    onError: (err) => cx.respond.error(txn, res, upstreamError(err, originOf(txn))),
  });
}
