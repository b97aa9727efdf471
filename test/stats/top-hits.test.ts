import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeTop, TopHits } from '../../src/stats/top-hits.js';

describe('top URLs by hits over the last minute', () => {
  it('ranks by hits and forgets hits older than a minute', () => {
    const top = new TopHits();
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) top.add('/old', t0);
    top.add('/b', t0 + 31_000);
    top.add('/b', t0 + 31_000);
    top.add('/c', t0 + 31_000);
    // 31 s later /old is in the previous generation, still within the minute.
    assert.deepEqual(top.top(10, t0 + 31_000), [
      ['/old', 3],
      ['/b', 2],
      ['/c', 1],
    ]);
    // Past a minute since /old was counted, only the newer generation remains.
    assert.deepEqual(top.top(10, t0 + 62_000), [
      ['/b', 2],
      ['/c', 1],
    ]);
    assert.deepEqual(top.top(10, t0 + 200_000), []);
  });

  it("sums the workers' lists", () => {
    assert.deepEqual(
      mergeTop(
        [
          [
            ['/a', 2],
            ['/b', 5],
          ],
          [['/a', 4]],
        ],
        1,
      ),
      [['/a', 6]],
    );
  });
});
