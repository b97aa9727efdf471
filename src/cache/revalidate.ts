/**
 * Revalidation (RFC 9111 §4.3): a conditional request with the stored validators, the stored entry
 * freshened by a 304 (§4.3.3, §4.3.4), stale-if-error on a 5xx or no answer (RFC 5861 §4), and the
 * background revalidation of stale-while-revalidate (RFC 5861 §3), once per object across workers.
 */
import type { ServerResponse } from 'node:http';
import { upstreamError } from '../http/errors.js';
import { endToEndHeaders, fieldValue, filterFields, type RawHeaders } from '../http/fields.js';
import { type StoredEntry, staleNow } from '../store/store.js';
import { NULL_SINK } from '../upstream/sinks.js';
import type { UpstreamRequest } from '../upstream/upstream.js';
import type { Transaction } from '../workers/transaction.js';
import { type FillLead, NO_LEAD } from './collapse.js';
import { type CacheContext, nowSeconds } from './context.js';
import { withMaxStale } from './freshness-rules.js';
import { deliverStored } from './hit.js';
import { fillError, forward, leaderLeft, originOf, storing, storingRequest, toClient } from './miss.js';
import {
  currentAge,
  formatHttpDate,
  freshnessLifetime,
  headResponseMatches,
  initialAge,
  noCacheFields,
  parseHttpDate,
  type RequestDirectives,
  type ResponseInfo,
  responseDirectives,
  staleIfErrorAllows,
  staleWhenDisconnectedAllows,
  storedPolicy,
  unstoredFields,
  updateHeaders,
} from './policy.js';

const CLIENT_VALIDATORS = new Set([
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
]);
const UPDATE_IGNORES = new Set(['via', 'age', 'content-length']);

/** RFC 9111 §4.3.1: a conditional request with the stored validators; the client's own are set aside. */
function conditional(up: UpstreamRequest, e: StoredEntry): UpstreamRequest {
  const headers = filterFields(up.headers, (n) => !CLIENT_VALIDATORS.has(n));
  if (e.etag !== undefined) headers.push('If-None-Match', e.etag);
  if (e.lastModified !== null) headers.push('If-Modified-Since', formatHttpDate(e.lastModified));
  return { ...up, headers };
}

/** RFC 9111 §4.3.3 and §4.3.4: the stored entry freshened by a 304. */
function freshened(cx: CacheContext, e: StoredEntry, raw: RawHeaders, requestTime: number): StoredEntry {
  const merged = updateHeaders(e.headers, endToEndHeaders(raw, UPDATE_IGNORES));
  const { cc } = responseDirectives(merged);
  // A 304's Set-Cookie updates the stored one under `store`, like any field (§3.2); otherwise it stays out.
  const unstored = unstoredFields(cc, cx.setCookie);
  const headers = unstored.size > 0 ? filterFields(merged, (n) => !unstored.has(n)) : merged;
  const info: ResponseInfo = { status: e.status, headers, requestTime, responseTime: nowSeconds() };
  const rule = cx.rules.rule(e.url);
  const lifetime = freshnessLifetime(info, cc, rule.heuristic);
  return {
    ...e,
    headers,
    requestTime,
    responseTime: info.responseTime,
    // The 304's own Date and Age describe the age of the freshened response.
    initialAge: initialAge({ ...info, headers: raw }),
    policy: withMaxStale(storedPolicy(cc, lifetime), rule.maxStale),
    noCacheFields: noCacheFields(cc),
    etag: fieldValue(headers, 'etag'),
    lastModified: parseHttpDate(fieldValue(headers, 'last-modified')),
  };
}

const ageOf = (e: StoredEntry) => currentAge(e.initialAge, e.responseTime, nowSeconds());

/**
 * A stale entry (or one the client asked to check) revalidated for the client. Concurrent requests for the
 * same object wait for this one answer (`fill`, collapsed forwarding), then look again.
 */
export function revalidate(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  key: string,
  e: StoredEntry,
  fwd: 'stale' | 'request',
  fill: FillLead = NO_LEAD,
): void {
  if (res.destroyed) return fill.end({ result: 'failed', error: null, leaderGone: true });
  const requestTime = nowSeconds();
  const rd = txn.directives as RequestDirectives;
  let goOn = false;
  res.once('close', () => {
    goOn = leaderLeft(cx, txn, res, fill);
  });
  txn.cache = { fwd };
  const serveStale = (fwdStatus: number | undefined, detail: string) => {
    txn.outcome = 'refresh-fail-old';
    txn.cache = { fwd: 'stale', fwdStatus, detail };
    // The waiters decide for themselves whether their request allows the stale answer.
    fill.end({ result: 'failed', error: null });
    deliverStored(cx, txn, res, e, ageOf(e));
  };
  const staleness = () => ageOf(e) - e.policy.lifetime;
  const staleIfError = () => fwd === 'stale' && staleIfErrorAllows(e.policy, staleness(), rd);
  const staleWhenDisconnected = () =>
    fwd === 'stale' &&
    staleWhenDisconnectedAllows(e.policy, staleness(), cx.rules.rule(key).disconnectedMaxStale);
  forward(
    cx,
    txn,
    res,
    {
      onHead: (status, raw) => {
        txn.upstreamStatus = status;
        if (status === 304) {
          const ne = freshened(cx, e, raw, requestTime);
          void cx.stores.store
            .update(key, ne)
            .finally(() => fill.end({ result: 'stored', chunks: 0, responseTime: ne.responseTime }));
          const age = ageOf(ne);
          txn.outcome = fwd === 'stale' ? 'refresh-unmodified' : 'client-refresh';
          txn.cache = { fwd, fwdStatus: 304, ttl: ne.policy.lifetime - age };
          deliverStored(cx, txn, res, ne, age);
          return NULL_SINK;
        }
        // RFC 5861 §4: a 5xx while stale may be answered with the stored response.
        if (status >= 500 && staleIfError()) {
          serveStale(status, 'stale-if-error');
          return NULL_SINK;
        }
        // §4.3.5: a 200 to HEAD updates the stored GET when it describes the same response, and makes it
        // stale when it does not.
        if (txn.method === 'HEAD' && status === 200)
          void cx.stores.store.update(
            key,
            headResponseMatches(raw, e) ? freshened(cx, e, raw, requestTime) : staleNow(e),
          );
        txn.outcome = fwd === 'stale' ? 'refresh-modified' : 'client-refresh';
        return toClient(cx, txn, res, status, raw, requestTime, fill);
      },
      onError: (err) => {
        if (staleIfError()) return serveStale(undefined, 'stale-if-error');
        // §4.2.4: no answer at all (refused, reset, closed, timed out): the origin is out of reach.
        if (staleWhenDisconnected()) return serveStale(undefined, 'origin unreachable');
        const pe = upstreamError(err, originOf(txn));
        fill.end(fillError(pe));
        cx.respond.error(txn, res, pe);
      },
    },
    conditional(cx.upstreamRequest(txn), e),
    () => goOn,
  );
}

/** Background revalidations this worker runs, so it starts at most one per object. */
const revalidating = new Set<string>();

/**
 * RFC 5861 §3: one background revalidation per object while stale content is served: per worker by a set,
 * across workers by a claim in the shared store.
 */
export function revalidateInBackground(
  cx: CacheContext,
  txn: Transaction,
  key: string,
  e: StoredEntry,
): void {
  if (revalidating.has(key)) return;
  revalidating.add(key);
  // Built now, while the client's request is at hand; the fetch itself has no client.
  const up: UpstreamRequest = { ...conditional(cx.upstreamRequest(txn), e), method: 'GET', body: null };
  const rq = { ...storingRequest(txn), key: e.url, method: 'GET', headers: up.headers };
  const { claims } = cx.stores;
  void claims.claim(key, cx.claimTtlMs, e).then((mine) => {
    if (!mine) {
      revalidating.delete(key);
      return;
    }
    const done = () => {
      revalidating.delete(key);
      claims.release(key);
    };
    const requestTime = nowSeconds();
    cx.upstream.fetch(
      up,
      {
        onHead: (status, raw) => {
          if (status === 304) {
            void cx.stores.store.update(key, freshened(cx, e, raw, requestTime)).finally(done);
            return NULL_SINK;
          }
          const tee = storing(cx, rq, status, raw, requestTime, {});
          if (tee === null) {
            done();
            return NULL_SINK;
          }
          // Held until the commit, so requests meanwhile do not start another revalidation.
          return tee.sink(NULL_SINK, () => done());
        },
        onError: (err) => {
          done();
          const perr = upstreamError(err, up.origin);
          cx.log.debug(
            { origin: up.origin, path: up.path, error: perr.squidError },
            `background fetch: ${perr.message}`,
          );
        },
      },
      // The routing stage reads the request's facts; the client's exchange is over by then.
      txn,
    );
  });
}
