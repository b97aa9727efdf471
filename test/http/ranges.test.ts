import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { byterangesParts, ifRangeAllows, parseRanges } from '../../src/http/ranges.js';

describe('RFC 9110 §14 ranges', () => {
  it('parses byte ranges, suffixes and open ends; ignores what it may ignore (§14.1.2, §14.2)', () => {
    const one = (start: number, end: number) => [{ start, end }];
    assert.deepEqual(parseRanges('bytes=0-99', 1000), one(0, 99));
    assert.deepEqual(parseRanges('bytes=900-', 1000), one(900, 999));
    assert.deepEqual(parseRanges('bytes=-100', 1000), one(900, 999));
    assert.deepEqual(parseRanges('bytes=990-5000', 1000), one(990, 999));
    assert.equal(parseRanges('bytes=1000-', 1000), 'unsatisfiable');
    assert.equal(parseRanges('bytes=-0', 1000), 'unsatisfiable');
    assert.equal(parseRanges('items=0-1', 1000), null);
    assert.equal(parseRanges('bytes=5-1', 1000), null);
    assert.equal(parseRanges('bytes=0-1,x', 1000), null);
    assert.deepEqual(parseRanges('bytes=0-1, 5-6', 1000), [
      { start: 0, end: 1 },
      { start: 5, end: 6 },
    ]);
    // Unsatisfiable members are dropped; overlapping and adjacent ones coalesce.
    assert.deepEqual(parseRanges('bytes=2000-3000, 0-1', 1000), one(0, 1));
    assert.deepEqual(parseRanges('bytes=500-, 0-10, 5-20, 21-30, -10', 1000), [
      { start: 0, end: 30 },
      { start: 500, end: 999 },
    ]);
    assert.equal(
      parseRanges(`bytes=${Array.from({ length: 33 }, (_, i) => `${i * 10}-${i * 10}`).join(',')}`, 1000),
      null,
    );
  });

  it('frames multipart/byteranges with exact lengths (§14.6)', () => {
    const spans = [
      { start: 0, end: 1 },
      { start: 5, end: 6 },
    ];
    const p = byterangesParts(spans, 10, 'text/plain', 'B');
    const body = `${p.heads[0]}ab${p.heads[1]}fg${p.tail}`;
    assert.equal(
      body,
      '--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\nab\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/10\r\n\r\nfg\r\n--B--\r\n',
    );
    assert.equal(p.length, Buffer.byteLength(body));
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
