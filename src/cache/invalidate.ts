/**
 * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and the same-origin
 * URIs in Location and Content-Location.
 */
import type { ServerResponse } from 'node:http';
import { upstreamError } from '../http/errors.js';
import { fieldValue } from '../http/fields.js';
import { responseHeaders } from '../http/respond.js';
import { ClientSink } from '../upstream/sinks.js';
import type { Transaction } from '../workers/transaction.js';
import type { CacheContext } from './context.js';
import { sameOriginKey } from './key.js';
import { forward, originOf } from './miss.js';
import { invalidates } from './policy.js';

export function forwardUnsafe(cx: CacheContext, txn: Transaction, res: ServerResponse): void {
  txn.outcome = 'pass';
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
      txn.cache = { fwd: 'method', fwdStatus: status };
      cx.respond.head(txn, res, status, responseHeaders(raw, cx.respond.via));
      return new ClientSink(res);
    },
    onError: (err) => cx.respond.error(txn, res, upstreamError(err, originOf(txn))),
  });
}
