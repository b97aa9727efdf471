/**
 * The cache stage for GET and HEAD: lookup → hit | stale → revalidate | miss → fetch and store
 * (RFC 9111 §4). Each step lives in its own module; this one only decides which.
 */
import type { ServerResponse } from 'node:http';
import { ProxyError } from '../http/errors.js';
import { fieldValue } from '../http/fields.js';
import type { Transaction } from '../workers/transaction.js';
import { type CacheContext, nowSeconds } from './context.js';
import { deliverStored } from './hit.js';
import { fetchMiss } from './miss.js';
import { servePartial } from './partial.js';
import { currentAge, type RequestDirectives, requestDirectives, reuse } from './policy.js';
import { revalidate, revalidateInBackground } from './revalidate.js';

/** The request's directives (§5.2.1), parsed once, with the freshness rules' request-side overrides. */
function directivesOf(cx: CacheContext, txn: Transaction): RequestDirectives {
  const raw = txn.req.rawHeaders;
  const directives = requestDirectives(raw);
  // Only rules with request-side options are looked up here, so a hit pays for none otherwise.
  if (!cx.rules.requestSide) return directives;
  const rule = cx.rules.rule(txn.key);
  // refresh_pattern ignore-reload: a client's no-cache or max-age=0 does not bypass the cache.
  let rd = rule.ignoreReload ? { ...directives, noCache: false, maxAge: undefined } : directives;
  // refresh_pattern refresh-ims: a client's conditional request is a hint to revalidate with the origin.
  if (
    rule.refreshIms &&
    (fieldValue(raw, 'if-modified-since') ?? fieldValue(raw, 'if-none-match')) !== undefined
  )
    rd = { ...rd, noCache: true };
  return rd;
}

export function serve(cx: CacheContext, txn: Transaction, res: ServerResponse, mayWait = true): void {
  const rd = txn.directives ?? directivesOf(cx, txn);
  txn.directives = rd;
  const { store, recency } = cx.stores;
  const found = rd.noStore ? { miss: 'uri-miss' as const } : store.lookup(txn.key, txn.req.rawHeaders);
  if ('entry' in found) {
    const e = found.entry;
    const age = currentAge(e.initialAge, e.responseTime, nowSeconds());
    const r = reuse(e.policy, age, rd);
    const ttl = e.policy.lifetime - age;
    switch (r.kind) {
      case 'fresh':
      case 'stale-ok':
        // Squid's TCP_SWAPFAIL_MISS: a stored body that cannot be read whole is dropped and fetched again,
        // before any byte of it reaches the client.
        if (!store.bodyComplete(e)) {
          cx.log.error({ url: e.url }, 'stored body incomplete: dropping the entry and fetching again');
          void store.invalidate(found.key);
          txn.outcome = 'swapfail';
          return fetchMiss(cx, txn, res, 'miss', 'stored body missing');
        }
        recency.touch(found.key);
        txn.outcome = 'hit';
        txn.cache = { hit: true, ttl };
        return deliverStored(cx, txn, res, e, age);
      case 'stale-while-revalidate':
        recency.touch(found.key);
        txn.outcome = 'hit';
        txn.cache = { hit: true, ttl, detail: 'stale-while-revalidate' };
        deliverStored(cx, txn, res, e, age);
        return revalidateInBackground(cx, txn, found.key, e);
      case 'revalidate': {
        if (rd.onlyIfCached) return onlyIfCachedMiss(cx, txn, res);
        const fwd = r.reason === 'request' ? 'request' : 'stale';
        if (fwd === 'stale' && mayWait && waitForOther(cx, txn, res, rd)) return;
        return revalidate(cx, txn, res, found.key, e, fwd);
      }
    }
  }
  // A partial entry (a stored 206) answers range requests, or completes them (partial.ts).
  if (found.partial !== undefined && servePartial(cx, txn, res, found.partial)) return;
  if (rd.onlyIfCached) return onlyIfCachedMiss(cx, txn, res);
  if (mayWait && waitForOther(cx, txn, res, rd)) return;
  fetchMiss(cx, txn, res, found.miss);
}

/**
 * Collapsed forwarding: a GET that needs the origin while another fetch or revalidation of the same object
 * is under way waits for it, then looks again. A client's own no-cache asks for its own answer.
 */
function waitForOther(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  rd: RequestDirectives,
): boolean {
  if (txn.method !== 'GET' || rd.noCache) return false;
  return cx.collapse.wait(txn.key, () => {
    // A waiter whose client left meanwhile is dropped: it must not become the next fetch's leader.
    if (res.destroyed) return;
    txn.collapsed = true;
    serve(cx, txn, res, false);
  });
}

/** RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored is answered 504. */
function onlyIfCachedMiss(cx: CacheContext, txn: Transaction, res: ServerResponse): void {
  txn.cache = { fwd: 'miss', detail: 'only-if-cached' };
  cx.respond.error(
    txn,
    res,
    new ProxyError(504, 'ERR_ONLY_IF_CACHED_MISS', 'only-if-cached: no usable stored response'),
  );
}
