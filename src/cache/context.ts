/** What every step of the cache stage is given, once per worker. */

import type { Forwarder } from '../fleet/forward.js';
import type { Logger } from '../shared/logger.js';
import type { Stores } from '../store/store.js';
import type { UpstreamRequest } from '../upstream/upstream.js';
import type { Respond } from '../workers/respond.js';
import type { Transaction } from '../workers/transaction.js';
import type { Collapse } from './collapse.js';
import type { FreshnessRules } from './freshness-rules.js';
import type { SetCookiePolicy } from './policy.js';

export interface CacheContext {
  stores: Stores;
  /** undici, or the fleet's routing stage in front of it (src/fleet/forward.ts). */
  upstream: Forwarder;
  collapse: Collapse;
  rules: FreshnessRules;
  respond: Respond;
  log: Logger;
  maxObjectSize: number;
  minObjectSize: number;
  /** Request fields every stored response is selected by, as if it listed them in Vary (lower-case). */
  keyHeaders: readonly string[];
  /** What to do with responses that set cookies (RFC 9111 §3.1, §7.3). */
  setCookie: SetCookiePolicy;
  /** Show Surrogate-Key / Cache-Tag to clients (by default they are for this cache only). */
  keepTagHeaders: boolean;
  /** How long a background revalidation's claim holds before another worker may presume it dead. */
  claimTtlMs: number;
  /** The request to send upstream for a transaction: built only when one is sent, so a hit never pays. */
  upstreamRequest(txn: Transaction): UpstreamRequest;
}

export const nowSeconds = () => Date.now() / 1000;
