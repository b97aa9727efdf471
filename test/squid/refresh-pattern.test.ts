/** refresh_pattern as freshness rules: the first matching pattern decides, the configured defaults fill in. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heuristicRules } from '../../src/cache/freshness-rules.js';
import { refreshPatternRules } from '../../src/squid/refresh-pattern.js';

describe('refresh_pattern rules', () => {
  const base = heuristicRules(0.1, 86_400, 604_800);
  const rules = refreshPatternRules(
    [
      { regex: '/news/', ignoreCase: false, min: 0, percent: 20, max: 60, options: [], maxStale: 30 },
      { regex: '\\.css$', ignoreCase: true, min: 10, percent: 20, max: 60, options: ['ignore-reload'] },
    ],
    base,
  );

  it('max-stale=N bounds serving stale on an unreachable origin for its URLs; max_stale covers the rest (RFC 9111 §4.2.4)', () => {
    assert.equal(rules.rule('http://a.test/news/1').disconnectedMaxStale, 30);
    assert.equal(rules.rule('http://a.test/news/1').maxStale, 30);
    assert.equal(rules.rule('http://a.test/A.CSS').disconnectedMaxStale, 604_800);
    assert.equal(rules.rule('http://a.test/other').disconnectedMaxStale, 604_800);
  });

  it('takes the first matching pattern, case-insensitively with -i', () => {
    assert.equal(rules.rule('http://a.test/A.CSS').ignoreReload, true);
    assert.equal(rules.rule('http://a.test/news/x.css').ignoreReload, false);
    assert.equal(rules.requestSide, true);
  });
});
