import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseContentRange, rangeValue } from '../../src/http/content-range.js';

describe('RFC 9110 §14.4 Content-Range', () => {
  it('reads a single byte range with a known complete length', () => {
    assert.deepEqual(parseContentRange('bytes 0-99/1000'), { start: 0, end: 99, complete: 1000 });
    assert.deepEqual(parseContentRange(' Bytes 999-999/1000 '), { start: 999, end: 999, complete: 1000 });
  });

  it('refuses what a cache cannot place: unknown length, unsatisfied, invalid, another unit', () => {
    for (const v of [
      undefined,
      'bytes 0-99/*',
      'bytes */1000',
      'bytes 100-99/1000',
      'bytes 0-1000/1000',
      'items 0-1/2',
      'bytes 0-99',
      'bytes=0-99/1000',
      'bytes 0-99/99999999999999999999',
    ])
      assert.equal(parseContentRange(v), null, String(v));
  });

  it('writes a Range for one span', () => {
    assert.equal(rangeValue({ start: 100, end: 199 }), 'bytes=100-199');
  });
});
