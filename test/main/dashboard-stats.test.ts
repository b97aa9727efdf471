import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quantile } from '../../src/main/dashboard-stats.js';

describe('quantile over cumulative histogram buckets (as histogram_quantile)', () => {
  const bounds = [0.001, 0.01, 0.1, Number.POSITIVE_INFINITY];

  it('interpolates linearly inside the bucket that holds the rank', () => {
    // 10 observations: 4 ≤ 1 ms, 6 more ≤ 10 ms.
    const counts = [4, 10, 10, 10];
    assert.equal(quantile(0.4, bounds, counts), 0.001);
    assert.ok(Math.abs((quantile(0.7, bounds, counts) ?? 0) - 0.0055) < 1e-12);
    assert.ok(Math.abs((quantile(1, bounds, counts) ?? 0) - 0.01) < 1e-12);
  });

  it('never answers above the upper bound of the bucket that holds the rank (regression: rounding)', () => {
    // Seen in the dashboard test: 0.0025000000000000005 for a p50 in (0.001, 0.0025].
    const durations = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, Number.POSITIVE_INFINITY];
    assert.equal(quantile(0.5, durations, [0, 0, 0, 0, 3, 6, 6, 6]), 0.0025);
  });

  it('answers the lower bound for the +Inf bucket, and null without observations', () => {
    assert.equal(quantile(0.99, bounds, [0, 0, 1, 2]), 0.1);
    assert.equal(quantile(0.5, bounds, [0, 0, 0, 0]), null);
  });
});
