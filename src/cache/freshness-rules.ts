/**
 * Freshness rules per URL: the heuristic (RFC 9111 §4.2.2) and the operator's overrides. The default is the
 * configured heuristic for every URL; squid.conf's refresh_pattern provides its own (squid/refresh-pattern.ts).
 */
import type { HeuristicOptions, StoredPolicy } from './policy.js';

/** What the rules decide for the URLs one rule matches. */
export interface RefreshRule {
  heuristic: HeuristicOptions;
  /** Operator overrides RFC 9111 does not allow (Squid's ignore-no-store, ignore-private). */
  ignore: { noStore?: boolean; private?: boolean };
  /** A client's no-cache or max-age=0 does not bypass the cache. */
  ignoreReload: boolean;
  /** A client's conditional request makes us revalidate with the origin. */
  refreshIms: boolean;
  /** Seconds a stale response may be served when revalidation fails (Squid's max-stale). */
  maxStale: number;
  /** Seconds a stale response may be served when the origin cannot be reached (§4.2.4; Squid's max_stale). */
  disconnectedMaxStale: number;
}

export interface FreshnessRules {
  rule(url: string): RefreshRule;
  /** Whether any rule changes how a request is served (ignoreReload, refreshIms): a hit looks rules up only then. */
  readonly requestSide: boolean;
  /** The rule for URLs no other rule matches. */
  readonly fallback: RefreshRule;
}

/** The configured RFC 9111 §4.2.2 heuristic for every URL. */
export function heuristicRules(
  fraction: number,
  maxSeconds: number,
  maxStaleSeconds: number,
): FreshnessRules {
  const fallback: RefreshRule = {
    heuristic: { fraction, max: maxSeconds },
    ignore: {},
    ignoreReload: false,
    refreshIms: false,
    maxStale: 0,
    disconnectedMaxStale: maxStaleSeconds,
  };
  return { rule: () => fallback, requestSide: false, fallback };
}

/** A rule's max-stale is stale-if-error for that long unless the response grants more itself. */
export function withMaxStale(p: StoredPolicy, maxStale: number): StoredPolicy {
  return maxStale > p.staleIfError ? { ...p, staleIfError: maxStale } : p;
}
