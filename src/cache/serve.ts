/**
 * The cache stage for GET and HEAD: lookup → hit | stale → revalidate | miss → fetch and store
 * (RFC 9111 §4). Each step lives in its own module; this one only decides which.
 */
import type { ServerResponse } from 'node:http';
import { ProxyError } from '../http/errors.js';
import { fieldValue, filterFields } from '../http/fields.js';
import type { StoredEntry } from '../store/store.js';
import { ClientSink } from '../upstream/sinks.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheStatus } from './cache-status.js';
import type { FillHead, FillLead } from './collapse.js';
import { type CacheContext, nowSeconds } from './context.js';
import { deliverStored } from './hit.js';
import { fetchMiss } from './miss.js';
import { servePartial } from './partial.js';
import {
  currentAge,
  type RequestDirectives,
  requestDirectives,
  reuse,
  staleIfErrorAllows,
} from './policy.js';
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

/**
 * `mayWait`: the request may join another's fetch; `lookedAgain`: it has already looked again after a
 * store the primary told it of (so it is not told again).
 */
export function serve(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  mayWait = true,
  lookedAgain = false,
): void {
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
        return deliverHit(cx, txn, res, found.key, e, age, ttl);
      case 'stale-while-revalidate':
        recency.touch(found.key);
        txn.outcome = 'hit';
        txn.cache = { hit: true, ttl, detail: 'stale-while-revalidate' };
        deliverStored(cx, txn, res, e, age);
        return revalidateInBackground(cx, txn, found.key, e);
      case 'revalidate': {
        if (rd.onlyIfCached) return onlyIfCachedMiss(cx, txn, res);
        const fwd = r.reason === 'request' ? 'request' : 'stale';
        if (fwd === 'stale' && mayWait && collapsible(txn, rd))
          return join(cx, txn, res, 'stale', e, lookedAgain, (fill) =>
            revalidate(cx, txn, res, found.key, e, fwd, fill),
          );
        return revalidate(cx, txn, res, found.key, e, fwd);
      }
    }
  }
  // A partial entry (a stored 206) answers range requests, or completes them (partial.ts).
  if (found.partial !== undefined && servePartial(cx, txn, res, found.partial)) return;
  if (rd.onlyIfCached) return onlyIfCachedMiss(cx, txn, res);
  const miss = found.miss;
  if (mayWait && collapsible(txn, rd))
    return join(cx, txn, res, miss, null, lookedAgain, (fill) =>
      fetchMiss(cx, txn, res, miss, undefined, fill),
    );
  fetchMiss(cx, txn, res, miss);
}

/** A fresh (or allowed stale) stored response, whole in the store, to the client: Squid's TCP_HIT. */
function deliverHit(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  key: string,
  e: StoredEntry,
  age: number,
  ttl: number,
): void {
  cx.stores.recency.touch(key);
  txn.outcome = 'hit';
  txn.cache = { hit: true, ttl };
  deliverStored(cx, txn, res, e, age);
}

/**
 * The lean front end's hit (workers/lean.ts): answers only what serve() would answer from the store alone,
 * fresh or allowed stale, with its body whole, and nothing else. False otherwise, before anything is
 * written, recorded or touched, so the request can start over on the full path. `tracked` runs first
 * when it answers (the finish hook).
 */
export function serveLocal(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  tracked: () => void,
): boolean {
  const rd = directivesOf(cx, txn);
  if (rd.noStore) return false;
  const store = cx.stores.store;
  const found = store.lookup(txn.key, txn.req.rawHeaders);
  if (!('entry' in found)) return false;
  const e = found.entry;
  const age = currentAge(e.initialAge, e.responseTime, nowSeconds());
  const kind = reuse(e.policy, age, rd).kind;
  if ((kind !== 'fresh' && kind !== 'stale-ok') || !store.bodyComplete(e)) return false;
  txn.directives = rd;
  tracked();
  deliverHit(cx, txn, res, found.key, e, age, e.policy.lifetime - age);
  return true;
}

/** Collapsed forwarding is for GET; a client's own no-cache asks for its own answer. */
const collapsible = (txn: Transaction, rd: RequestDirectives) => txn.method === 'GET' && !rd.noCache;

/**
 * Collapsed forwarding (cache/collapse.ts): this request leads the one fetch or revalidation of its object
 * across workers, or waits for it. A waiter streams the fill when it can, looks again once the object is
 * stored (or will not be), and takes the failure (or its stale entry, RFC 5861 §4) when the fetch fails.
 */
function join(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  fwd: NonNullable<CacheStatus['fwd']>,
  stale: StoredEntry | null,
  lookedAgain: boolean,
  lead: (fill: FillLead) => void,
): void {
  cx.collapse.join(
    txn.key,
    {
      gone: () => res.destroyed,
      lookAgain: () => {
        cx.stores.store.renewSnapshot();
        serve(cx, txn, res, true, true);
      },
      retry: (again) => {
        // After a leader died this request claims the fetch anew: it is not answered by another's yet.
        if (!again) txn.collapsed = true;
        cx.stores.store.renewSnapshot();
        serve(cx, txn, res, again);
      },
      failed: (err) => {
        txn.collapsed = true;
        const rd = txn.directives as RequestDirectives;
        if (stale !== null) {
          const age = currentAge(stale.initialAge, stale.responseTime, nowSeconds());
          if (staleIfErrorAllows(stale.policy, age - stale.policy.lifetime, rd)) {
            txn.outcome = 'refresh-fail-old';
            txn.cache = { fwd: 'stale', detail: 'stale-if-error', collapsed: true };
            return deliverStored(cx, txn, res, stale, age);
          }
        }
        if (err === null) return serve(cx, txn, res, false);
        txn.cache = { fwd, collapsed: true };
        cx.respond.error(txn, res, new ProxyError(err.status, err.squidError, err.message));
      },
      stream: (head) => streamFill(cx, txn, res, fwd, head),
    },
    lead,
    lookedAgain ? null : (stale?.responseTime ?? 0),
  );
}

/** Request fields that ask for something other than the whole current body. */
const SELECTIVE = ['range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'];

/**
 * A waiter answered from a fill under way: the head the leader stored, the body as its chunks commit.
 * Ranges and conditionals look again once the object is stored, where every rule of a hit applies.
 */
function streamFill(
  cx: CacheContext,
  txn: Transaction,
  res: ServerResponse,
  fwd: NonNullable<CacheStatus['fwd']>,
  head: FillHead,
): ClientSink | null {
  if (res.destroyed) return null;
  const raw = txn.req.rawHeaders;
  if (SELECTIVE.some((n) => fieldValue(raw, n) !== undefined)) return null;
  const h =
    head.noCacheFields.length > 0
      ? filterFields(head.headers, (n) => !head.noCacheFields.includes(n))
      : head.headers.slice();
  if (head.length !== null) h.push('Content-Length', String(head.length));
  h.push('Age', String(Math.floor(currentAge(head.initialAge, head.responseTime, nowSeconds()))));
  txn.outcome = 'miss';
  txn.collapsed = true;
  txn.cache = { fwd, collapsed: true };
  cx.respond.head(txn, res, head.status, h);
  return new ClientSink(res);
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
