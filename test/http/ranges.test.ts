import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ifRangeAllows, parseRange } from '../../src/http/ranges.js';

describe('RFC 9110 §14 ranges', () => {
  it('parses one byte range, suffixes and open ends; ignores what it may ignore', () => {
    assert.deepEqual(parseRange('bytes=0-99', 1000), { start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=900-', 1000), { start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', 1000), { start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=990-5000', 1000), { start: 990, end: 999 });
    assert.equal(parseRange('bytes=1000-', 1000), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-1,5-6', 1000), null);
    assert.equal(parseRange('items=0-1', 1000), null);
    assert.equal(parseRange('bytes=5-1', 1000), null);
  });

  it('honours If-Range only for a strong ETag or the exact Last-Modified (§13.1.5)', () => {
    assert.equal(ifRangeAllows(undefined, undefined, undefined), true);
    assert.equal(ifRangeAllows('"a"', '"a"', undefined), true);
    assert.equal(ifRangeAllows('"a"', 'W/"a"', undefined), false);
    assert.equal(
      ifRangeAllows('Mon, 01 Jan 2024 00:00:00 GMT', undefined, 'Mon, 01 Jan 2024 00:00:00 GMT'),
      true,
    );
    assert.equal(
      ifRangeAllows('Tue, 02 Jan 2024 00:00:00 GMT', undefined, 'Mon, 01 Jan 2024 00:00:00 GMT'),
      false,
    );
  });
});
