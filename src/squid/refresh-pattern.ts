/**
 * refresh_pattern as freshness rules: the first pattern matching the URL sets the heuristic (min, percent,
 * max) and its options; URLs no pattern matches get the configured RFC 9111 §4.2.2 heuristic.
 */
import type { FreshnessRules, RefreshRule } from '../cache/freshness-rules.js';
import type { RefreshPattern } from './conf.js';

export function refreshPatternRules(patterns: RefreshPattern[], base: FreshnessRules): FreshnessRules {
  const fallback = base.fallback;
  const compiled = patterns.map((p) => ({
    re: new RegExp(p.regex, p.ignoreCase ? 'i' : ''),
    rule: {
      heuristic: {
        fraction: p.percent / 100,
        min: p.min,
        max: p.max,
        overrideExpire: p.options.includes('override-expire'),
        overrideLastmod: p.options.includes('override-lastmod'),
      },
      ignore: {
        noStore: p.options.includes('ignore-no-store'),
        private: p.options.includes('ignore-private'),
      },
      ignoreReload: p.options.includes('ignore-reload'),
      refreshIms: p.options.includes('refresh-ims'),
      maxStale: p.maxStale ?? 0,
      disconnectedMaxStale: p.maxStale ?? fallback.disconnectedMaxStale,
    } satisfies RefreshRule,
  }));
  return {
    rule(url) {
      for (const p of compiled) if (p.re.test(url)) return p.rule;
      return fallback;
    },
    requestSide: compiled.some((p) => p.rule.ignoreReload || p.rule.refreshIms),
    fallback,
  };
}
