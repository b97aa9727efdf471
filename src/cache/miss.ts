/**
 * A miss: forward, and store while streaming when RFC 9111 §3 allows. The storing decision is made once
 * per response head from facts (key, request, status, fields), for a client's fetch and a background
 * revalidation alike.
 */
import type { ServerResponse } from 'node:http';
import { type ProxyError, upstreamError } from '../http/errors.js';
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { responseHeaders } from '../http/respond.js';
import type { BodySink, StoredEntry } from '../store/store.js';
import { ClientSink, type Settled, TeeSink } from '../upstream/sinks.js';
import type { Exchange } from '../upstream/upstream.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheStatus } from './cache-status.js';
import { type FillEnd, type FillLead, NO_LEAD } from './collapse.js';
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
  /** `fill`: the collapsed fetch this is, published to its waiters as the body commits. */
  sink(next: BodySink, settled: Settled, fill?: FillLead): BodySink;
}

/** The leader's client left before its answer was whole, and nobody else waits for the fetch. */
export const LEADER_GONE: FillEnd = { result: 'failed', error: null, leaderGone: true };

/** How collapsed waiters hear of a failed fetch. */
export const fillError = (e: ProxyError): FillEnd => ({
  result: 'failed',
  error: { status: e.status, squidError: e.squidError, message: e.message },
});

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
  if (status === 206) {
    const piece = storingPiece(cx, rq, raw, requestTime, cs);
    if (piece === null) return null;
    // A piece is not streamed to collapsed waiters: once it is stored they look again (and may find it).
    return {
      sink: (next, settled, fill) =>
        piece.sink(next, (stored, cut) => {
          fill?.end(stored ? { result: 'stored', chunks: 0 } : cutEnd(cut));
          settled(stored, cut);
        }),
    };
  }
  const entry = storingEntry(cx, rq, status, raw, requestTime, cs);
  if (entry === null) return null;
  const store = cx.stores.store;
  const names = selectingFields(varyNames(raw), cx.keyHeaders);
  const length = Number(fieldValue(raw, 'content-length') ?? Number.NaN);
  return {
    sink: (next, settled, fill) => {
      const writer = store.writer(cx.maxObjectSize);
      if (fill) {
        fill.head({
          status: entry.status,
          headers: entry.headers.slice(),
          length: Number.isFinite(length) ? length : null,
          bodyId: writer.id,
          initialAge: entry.initialAge,
          responseTime: entry.responseTime,
          noCacheFields: entry.noCacheFields,
          vary: names !== null && names.length > 0,
        });
        writer.onChunk = (n) => fill.chunk(n);
      }
      return new TeeSink(
        writer,
        next,
        () => {
          entry.headers.push('Content-Length', String(writer.size));
          return store.commit(rq.key, names, rq.headers, entry, writer);
        },
        (stored, cut) => {
          fill?.end(
            stored
              ? { result: 'stored', chunks: entry.chunks, responseTime: entry.responseTime }
              : cutEnd(cut),
          );
          settled(stored, cut);
        },
      );
    },
  };
}

/**
 * A copy into the store that was abandoned: cut mid-body, the waiters that got nothing are told (502);
 * refused by the store, they fetch for themselves.
 */
const cutEnd = (cut: string | null): FillEnd => ({
  result: 'failed',
  error:
    cut === null
      ? null
      : { status: 502, squidError: 'ERR_READ_ERROR', message: `the response was cut: ${cut}` },
});

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
 * The response goes to the client, through the store when it is storable. The collapsed waiters of `fill`
 * are released at once when the response will not be stored, and otherwise stream it as it commits.
 */
export function toClient(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  status: number,
  raw: RawHeaders,
  requestTime: number,
  fill: FillLead,
): BodySink {
  const cs = txn.cache as CacheStatus;
  cs.fwdStatus = status;
  txn.upstreamStatus = status;
  // A peer's answer that this member keeps no copy of (proxy-only, a reverse fleet's non-owner).
  const tee = txn.peerNoStore ? null : storing(cx, storingRequest(txn), status, raw, requestTime, cs);
  const out = responseHeaders(raw, cx.respond.via);
  cx.respond.head(txn, res, status, cx.keepTagHeaders ? out : withoutTagFields(out));
  const client = new ClientSink(res);
  if (tee === null) {
    // A peer's answer kept only by its owner says nothing about the URL: no hit-for-miss mark, so the
    // next requests here still collapse (and, should the owner fail, this member fetches it once).
    if (txn.peerNoStore) {
      fill.end({ result: 'failed', error: null });
      return client;
    }
    if (txn.method === 'GET') cx.collapse.notStorable(txn.key);
    fill.end({ result: 'not-storable' });
    return client;
  }
  cx.collapse.storable(txn.key);
  // Only a body larger than what a client may lag behind can make it follow the store.
  const length = Number(fieldValue(raw, 'content-length') ?? Number.NaN);
  const next = length > LAG_LIMIT ? new LeaderClient(res, fill) : client;
  return tee.sink(next, () => {}, fill);
}

/** How far a leader's client may fall behind the origin, in bytes buffered for it, before it follows the store. */
const LAG_LIMIT = 1024 * 1024;

/**
 * The leader's client of a fill being stored. When it reads so much slower than the origin sends that a
 * megabyte waits in its buffer, it goes on from the store like any waiter, so the fetch, and every waiter
 * behind it, runs at the origin's pace and not at this client's (Varnish's fetch thread is not paced by one
 * client either). Until then it takes what comes: following the store costs reads, and ties the client to
 * the store's success.
 */
class LeaderClient implements BodySink {
  private sent = 0;
  private following = false;
  private readonly client: ClientSink;

  constructor(
    private readonly res: ServerResponse,
    private readonly fill: FillLead,
  ) {
    this.client = new ClientSink(res);
  }

  write(chunk: Buffer, resume: () => void): boolean {
    if (this.following || this.res.destroyed) return true;
    this.sent += chunk.length;
    if (this.res.write(chunk) || this.res.writableLength < LAG_LIMIT) return true;
    this.following = this.fill.follow(this.client, this.sent);
    if (this.following) return true;
    this.res.once('drain', resume);
    return false;
  }

  end(last?: Buffer): void {
    // A follower is ended by the fill once the body is committed (or cut if it never is).
    if (!this.following) this.client.end(last);
  }

  abort(): void {
    this.client.abort();
  }

  onGone(gone: () => void): void {
    this.client.onGone(gone);
  }
}

/**
 * The leader's client left. The fetch goes on when its response is being stored and others wait for it
 * (Squid's quick_abort, decided by who is left); otherwise the waiters are told to claim it again.
 */
export function leaderLeft(cx: CacheContext, txn: Transaction, res: ServerResponse, fill: FillLead): boolean {
  if (res.writableFinished) return false;
  if (txn.cache?.stored === true && cx.collapse.followed(txn.key)) return true;
  fill.end(LEADER_GONE);
  return false;
}

/** Where the transaction was routed, for error messages. */
export const originOf = (txn: Transaction) => txn.route?.origin ?? '-';

/**
 * Sends the transaction upstream for the client; a client that leaves cuts the exchange, unless
 * `goOn` says others need it.
 */
export function forward(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  exchange: Exchange,
  up = cx.upstreamRequest(txn),
  goOn: () => boolean = () => false,
): void {
  txn.forwarded = true;
  const pending = cx.upstream.fetch(
    up,
    { ...exchange, onInterim: (status, raw) => cx.respond.interim(txn, res, status, raw) },
    txn,
  );
  res.once('close', () => {
    if (!res.writableFinished && !goOn()) pending.abort('client closed the connection');
  });
}

/** A miss: fetch, store while streaming when allowed, and lead the collapsed waiters of `fill`, if any. */
export function fetchMiss(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  fwd: NonNullable<CacheStatus['fwd']>,
  detail?: string,
  fill: FillLead = NO_LEAD,
): void {
  // Nothing to fetch for a client that is gone; its waiters claim the fetch again.
  if (res.destroyed) return fill.end(LEADER_GONE);
  const requestTime = nowSeconds();
  txn.cache = { fwd, detail };
  if (txn.outcome === 'none') txn.outcome = 'miss';
  let goOn = false;
  res.once('close', () => {
    goOn = leaderLeft(cx, txn, res, fill);
  });
  forward(
    cx,
    txn,
    res,
    {
      onHead: (status, raw) => toClient(cx, txn, res, status, raw, requestTime, fill),
      onError: (err) => {
        const e = upstreamError(err, originOf(txn));
        fill.end(fillError(e));
        cx.respond.error(txn, res, e);
      },
    },
    undefined,
    () => goOn,
  );
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
