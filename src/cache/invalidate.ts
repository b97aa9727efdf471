/**
 * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and the same-origin
 * URIs in Location and Content-Location. RFC 9110 §9.3.3 / RFC 9111 §4: a POST response with explicit
 * freshness whose Content-Location is its own target URI is the representation a GET of it would get, so it
 * is stored for later GETs.
 */
import type { ServerResponse } from 'node:http';
import { upstreamError } from '../http/errors.js';
import { fieldValue, type RawHeaders } from '../http/fields.js';
import { responseHeaders } from '../http/respond.js';
import { ClientSink } from '../upstream/sinks.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheStatus } from './cache-status.js';
import { type CacheContext, nowSeconds } from './context.js';
import { sameOriginKey } from './key.js';
import { forward, originOf, storing, storingRequest } from './miss.js';
import { hasExplicitFreshness, invalidates, requestDirectives, responseDirectives } from './policy.js';

/** RFC 9110 §9.3.3: POST, explicit freshness, and Content-Location naming the target URI itself. */
function reusableForGet(txn: Transaction, raw: RawHeaders): boolean {
  if (txn.method !== 'POST') return false;
  if (sameOriginKey(txn.key, fieldValue(raw, 'content-location')) !== txn.key) return false;
  return hasExplicitFreshness(raw, responseDirectives(raw).cc);
}

export function forwardUnsafe(cx: CacheContext, txn: Transaction, res: ServerResponse): void {
  txn.outcome = 'pass';
  const requestTime = nowSeconds();
  forward(cx, txn, res, {
    onHead: (status, raw) => {
      txn.upstreamStatus = status;
      if (invalidates(txn.method, status)) {
        const { store } = cx.stores;
        void store.invalidate(txn.key);
        for (const f of ['location', 'content-location']) {
          const other = sameOriginKey(txn.key, fieldValue(raw, f));
          if (other) void store.invalidate(other);
        }
      }
      const cs: CacheStatus = { fwd: 'method', fwdStatus: status };
      txn.cache = cs;
      const tee = reusableForGet(txn, raw)
        ? storing(
            cx,
            { ...storingRequest(txn), method: 'GET', directives: requestDirectives(txn.req.rawHeaders) },
            status,
            raw,
            requestTime,
            cs,
          )
        : null;
      cx.respond.head(txn, res, status, responseHeaders(raw, cx.respond.via));
      const client = new ClientSink(res);
      return tee === null ? client : tee.sink(client, () => {});
    },
    onError: (err) => cx.respond.error(txn, res, upstreamError(err, originOf(txn))),
  });
}
