import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  combinedHeaders,
  combinePiece,
  heldSpans,
  holdsAll,
  ifRangeValidator,
  MAX_PIECES,
  missingSpans,
  readPlan,
  sameStrongValidator,
  withPiece,
} from '../../src/cache/partial-ranges.js';
import type { PartialEntry, Piece } from '../../src/store/store.js';
import { entry } from '../store/contract.js';

const piece = (start: number, size: number, bodyId = `b${start}-${size}`): Piece => ({
  start,
  size,
  bodyId,
  chunks: 0,
  body: null,
});
const span = (start: number, end: number) => ({ start, end });
const partial = (pieces: Piece[], over: Partial<PartialEntry> = {}): PartialEntry => ({
  ...entry('http://a.test/x'),
  kind: 'partial',
  status: 206,
  size: 1000,
  pieces,
  ...over,
});

describe('partial entries: range arithmetic (RFC 9111 §3.3)', () => {
  it('merges held pieces into spans, adjacent and overlapping ones together', () => {
    assert.deepEqual(heldSpans([piece(500, 100), piece(0, 100), piece(100, 50), piece(580, 40)]), [
      span(0, 149),
      span(500, 619),
    ]);
    assert.deepEqual(heldSpans([]), []);
  });

  it('finds the bytes a request still needs', () => {
    const held = [span(100, 199), span(300, 399)];
    assert.deepEqual(missingSpans([span(120, 180)], held), []);
    assert.deepEqual(missingSpans([span(0, 99)], held), [span(0, 99)]);
    assert.deepEqual(missingSpans([span(150, 350)], held), [span(200, 299)]);
    assert.deepEqual(missingSpans([span(50, 450)], held), [span(50, 99), span(200, 299), span(400, 450)]);
    assert.deepEqual(missingSpans([span(0, 9), span(150, 160), span(390, 420)], held), [
      span(0, 9),
      span(400, 420),
    ]);
    assert.deepEqual(missingSpans([span(0, 9)], []), [span(0, 9)]);
    assert.equal(holdsAll([piece(0, 600), piece(500, 500)], 1000), true);
    assert.equal(holdsAll([piece(0, 600), piece(601, 399)], 1000), false);
  });

  it('plans reads across pieces, taking the piece that reaches furthest', () => {
    const a = piece(0, 100);
    const b = piece(50, 200);
    const c = piece(60, 20);
    assert.deepEqual(readPlan([a, b, c], span(10, 200)), [
      { piece: a, from: 10, to: 99 },
      { piece: b, from: 100, to: 200 },
    ]);
    assert.deepEqual(readPlan([a, b], span(70, 80)), [{ piece: b, from: 70, to: 80 }]);
    assert.equal(readPlan([a, b], span(200, 300)), null);
    assert.equal(readPlan([a, piece(101, 10)], span(0, 105)), null, 'byte 100 is not held');
  });

  it('adds a piece: the ones it covers go, the new one always stays', () => {
    const kept = withPiece([piece(0, 100), piece(150, 10), piece(300, 100)], piece(120, 200));
    assert.deepEqual(
      kept.map((p) => [p.start, p.size]),
      [
        [0, 100],
        [120, 200],
        [300, 100],
      ],
    );
    assert.deepEqual(withPiece([piece(0, 100)], piece(10, 10)).length, 2);
    const many = Array.from({ length: MAX_PIECES }, (_, i) => piece(i * 10, 5));
    assert.deepEqual(withPiece(many, piece(900, 5)), [piece(900, 5)]);
  });
});

describe('partial entries: validators and combining (RFC 9111 §3.4, RFC 9110 §8.8)', () => {
  const lm = (date: string, lastModified: string) => ({
    etag: undefined,
    lastModified: Date.parse(lastModified) / 1000,
    headers: ['Date', date],
  });

  it('compares validators strongly', () => {
    const e = (etag: string | undefined) => ({ etag, lastModified: null, headers: [] });
    assert.equal(sameStrongValidator(e('"a"'), e('"a"')), true);
    assert.equal(sameStrongValidator(e('"a"'), e('"b"')), false);
    assert.equal(sameStrongValidator(e('W/"a"'), e('W/"a"')), false, 'weak tags never match strongly');
    assert.equal(sameStrongValidator(e('"a"'), e(undefined)), false);
    assert.equal(sameStrongValidator(e(undefined), e(undefined)), false, 'no validator at all');
    const t = 'Tue, 01 Dec 2026 10:00:00 GMT';
    const later = 'Tue, 01 Dec 2026 10:00:05 GMT';
    assert.equal(sameStrongValidator(lm(later, t), lm(later, t)), true, 'Date a second after: strong');
    assert.equal(sameStrongValidator(lm(t, t), lm(t, t)), false, 'Date = Last-Modified: weak');
    assert.equal(ifRangeValidator(e('"a"')), '"a"');
    assert.equal(ifRangeValidator(e('W/"a"')), undefined);
    assert.equal(ifRangeValidator(lm(later, t)), t);
    assert.equal(ifRangeValidator(lm(t, t)), undefined);
  });

  it("takes the new response's fields over the stored ones, keeping the others", () => {
    assert.deepEqual(
      combinedHeaders(
        ['Content-Type', 'a/b', 'X-Old', '1', 'Cache-Control', 'max-age=1'],
        ['cache-control', 'max-age=9'],
      ),
      ['Content-Type', 'a/b', 'X-Old', '1', 'cache-control', 'max-age=9'],
    );
  });

  it('combines only pieces of the same representation; the newer response wins otherwise', () => {
    const old = partial([piece(0, 100)], { headers: ['X-Old', '1', 'Cache-Control', 'max-age=1'] });
    const next = partial([piece(500, 100)], { headers: ['Cache-Control', 'max-age=60'], bodyId: 'new' });
    assert.equal(combinePiece(undefined, next), next);
    assert.equal(combinePiece({ kind: 'vary', names: ['accept'], variants: [] }, next), next);
    const combined = combinePiece(old, next);
    assert.deepEqual(
      combined?.pieces.map((p) => p.start),
      [0, 500],
    );
    assert.deepEqual(combined?.headers, ['X-Old', '1', 'Cache-Control', 'max-age=60']);
    assert.equal(combined?.bodyId, 'new');
    assert.equal(combinePiece(old, { ...next, etag: '"other"' })?.pieces.length, 1);
    assert.equal(combinePiece(old, { ...next, size: 2000 })?.pieces.length, 1, 'another length');
    const complete = { ...entry('http://a.test/x'), size: 1000 };
    assert.equal(combinePiece(complete, next), null, 'a complete entry already holds the bytes');
    assert.equal(combinePiece({ ...complete, etag: '"other"' }, next), next);
  });
});
