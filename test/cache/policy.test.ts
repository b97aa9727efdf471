import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatCacheStatus } from '../../src/cache/cache-status.js';
import {
  clientConditionalMatches,
  freshnessLifetime,
  headResponseMatches,
  initialAge,
  parseAge,
  parseCacheControl,
  parseCdnCacheControl,
  parseHttpDate,
  requestDirectives,
  reuse,
  type SetCookiePolicy,
  staleIfErrorAllows,
  storability,
  storedPolicy,
  unstoredFields,
  updateHeaders,
  varyKey,
} from '../../src/cache/policy.js';

const H = { fraction: 0.1, max: 86400 };
const T = Date.UTC(2024, 0, 10) / 1000;

describe('cache-policy (pure RFC 9111 functions)', () => {
  it('parses the three HTTP-date forms strictly (RFC 9110 §5.6.7)', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), t);
    // §5.6.7 robustness: names in any case.
    assert.equal(parseHttpDate('sun, 06 NOV 1994 08:49:37 gmt'), t);
    assert.equal(parseHttpDate('SUNDAY, 06-nov-94 08:49:37 Gmt'), t);
    assert.equal(parseHttpDate('sun nov  6 08:49:37 1994'), t);
    assert.equal(parseHttpDate('Sun, 06 Nox 1994 08:49:37 GMT'), null);
    for (const bad of [
      '0',
      '-1',
      'Sun, 06 Nov 1994 08:49:37 PST',
      '1994-11-06',
      'Sun, 32 Nov 1994 08:49:37 GMT',
    ]) {
      assert.equal(parseHttpDate(bad), null, bad);
    }
  });

  it('parses Cache-Control case-insensitively with quoted values (§5.2)', () => {
    const cc = parseCacheControl('Max-Age=60, no-cache="Set-Cookie, X-A", PUBLIC');
    assert.equal(cc.get('max-age'), '60');
    assert.equal(cc.get('no-cache'), 'Set-Cookie, X-A');
    assert.equal(cc.get('public'), true);
  });

  it('reads Age as its first member and ignores invalid values (§5.1)', () => {
    assert.equal(parseAge('10, 20'), 10);
    assert.equal(parseAge('-5'), 0);
    assert.equal(parseAge('1.5'), 0);
    assert.equal(parseAge(undefined), 0);
  });

  it('gives heuristic freshness to every heuristically cacheable status, and to any with public (RFC 9110 §15.1, RFC 9111 §4.2.2)', () => {
    const date = new Date(T * 1000).toUTCString();
    const lm = new Date((T - 1000) * 1000).toUTCString();
    const info = (status: number) => ({
      status,
      headers: ['Date', date, 'Last-Modified', lm],
      requestTime: T,
      responseTime: T,
    });
    for (const code of [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])
      assert.equal(freshnessLifetime(info(code), new Map(), H), 100, String(code));
    for (const code of [201, 302, 307, 403, 500, 503, 599]) {
      assert.equal(freshnessLifetime(info(code), new Map(), H), 0, String(code));
      assert.equal(freshnessLifetime(info(code), parseCacheControl('public'), H), 100, `${code} public`);
    }
  });

  it('computes freshness: s-maxage, max-age, Expires − Date, then a capped heuristic (§4.2.1, §4.2.2)', () => {
    const info = (headers: string[], status = 200) => ({ status, headers, requestTime: T, responseTime: T });
    const date = new Date(T * 1000).toUTCString();
    assert.equal(freshnessLifetime(info([]), parseCacheControl('s-maxage=5, max-age=9'), H), 5);
    assert.equal(
      freshnessLifetime(
        info(['Date', date, 'Expires', new Date((T + 30) * 1000).toUTCString()]),
        new Map(),
        H,
      ),
      30,
    );
    assert.equal(freshnessLifetime(info(['Expires', 'garbage']), new Map(), H), 0);
    const lm = new Date((T - 1000) * 1000).toUTCString();
    assert.equal(freshnessLifetime(info(['Date', date, 'Last-Modified', lm]), new Map(), H), 100);
    const old = new Date((T - 100 * 86400) * 1000).toUTCString();
    assert.equal(freshnessLifetime(info(['Date', date, 'Last-Modified', old]), new Map(), H), 86400);
    assert.equal(freshnessLifetime(info(['Date', date, 'Last-Modified', lm], 500), new Map(), H), 0);
  });

  it("applies Squid's refresh_pattern min, max, override-expire and override-lastmod", () => {
    const info = (headers: string[]) => ({ status: 200, headers, requestTime: T, responseTime: T });
    const date = new Date(T * 1000).toUTCString();
    const recent = new Date((T - 1000) * 1000).toUTCString();
    const R = { fraction: 0.2, min: 600, max: 3600 };
    assert.equal(freshnessLifetime(info(['Date', date]), new Map(), R), 600, 'no Last-Modified: min');
    assert.equal(freshnessLifetime(info(['Date', date, 'Last-Modified', recent]), new Map(), R), 200);
    assert.equal(
      freshnessLifetime(info(['Date', date, 'Last-Modified', recent]), new Map(), {
        ...R,
        overrideLastmod: true,
      }),
      600,
    );
    assert.equal(freshnessLifetime(info([]), parseCacheControl('max-age=5'), R), 5);
    assert.equal(
      freshnessLifetime(info([]), parseCacheControl('max-age=5'), { ...R, overrideExpire: true }),
      600,
    );
    assert.equal(freshnessLifetime(info(['Date', date]), new Map(), { ...R, min: 9999 }), 3600, 'max caps');
  });

  it('computes the initial age from Age, Date and the response delay (§4.2.3)', () => {
    const date = new Date((T - 10) * 1000).toUTCString();
    assert.equal(
      initialAge({ status: 200, headers: ['Date', date], requestTime: T - 2, responseTime: T }),
      10,
    );
    assert.equal(
      initialAge({ status: 200, headers: ['Age', '30'], requestTime: T - 2, responseTime: T }),
      32,
    );
  });

  it('decides storability as a shared cache (§3)', () => {
    const s = (status: number, cc: string, req: string[] = [], res: string[] = []) =>
      storability(
        { method: 'GET', headers: req, directives: requestDirectives(req) },
        status,
        res,
        parseCacheControl(cc),
      );
    assert.equal(s(200, 'max-age=60'), null);
    assert.equal(s(503, 'max-age=60'), null);
    assert.equal(s(500, ''), 'no freshness');
    assert.equal(s(200, 'private, max-age=60'), 'private');
    assert.equal(s(200, 'no-store'), 'no-store');
    assert.equal(s(200, 'no-store, must-understand'), null);
    assert.equal(s(200, 'max-age=60', ['Authorization', 'x']), 'authorization');
    assert.equal(s(200, 'max-age=60', [], ['Vary', 'Accept, *']), 'vary-star');
    assert.equal(s(206, 'max-age=60'), 'status');
    // §3: any final status with explicit freshness; §5.2.2.3 must-understand limits that to known codes.
    for (const code of [299, 499, 599]) {
      assert.equal(s(code, 'max-age=60'), null, String(code));
      assert.equal(s(code, ''), 'no freshness', String(code));
      assert.equal(s(code, 'max-age=60, must-understand'), 'status', String(code));
      assert.equal(s(code, 'no-store, must-understand, max-age=60'), 'status', String(code));
    }
    assert.equal(s(304, 'max-age=60'), 'status');
    assert.equal(
      storability(
        { method: 'POST', headers: [], directives: requestDirectives([]) },
        200,
        [],
        parseCacheControl('max-age=60'),
      ),
      'method',
    );
  });

  it('parses CDN-Cache-Control as a strict RFC 8941 dictionary, or ignores it whole (RFC 9213 §2.1)', () => {
    const cases: Array<[string, Record<string, string | true> | null]> = [
      ['max-age=60', { 'max-age': '60' }],
      ['max-age=60, public', { 'max-age': '60', public: true }],
      ['  s-maxage=10 ', { 's-maxage': '10' }],
      ['no-store, must-revalidate', { 'no-store': true, 'must-revalidate': true }],
      ['public=?0, max-age=5', { 'max-age': '5' }],
      ['no-cache=("set-cookie" "x-a")', { 'no-cache': 'set-cookie, x-a' }],
      ['max-age=60;foo=1, unknown="x"', { 'max-age': '60' }],
      ['max-age = 60', null],
      ['max-age="60"', null],
      ['max-age=60.5', null],
      ['max-age=60.0', null],
      ['max-age=-1', null],
      ['MAX-AGE=60', null],
      ['max-age=60,,', null],
      ['no-store=1', null],
      ['no-cache="set-cookie"', null],
      ['max-age=(1 2)', null],
    ];
    for (const [value, expected] of cases) {
      const got = parseCdnCacheControl(value);
      assert.deepEqual(got === null ? null : Object.fromEntries(got), expected, value);
    }
  });

  it('tells whether a 200 to HEAD describes the stored GET (RFC 9111 §4.3.5)', () => {
    const stored = {
      etag: '"a"',
      lastModified: Date.UTC(2024, 0, 1) / 1000,
      headers: ['Content-Length', '10'],
      responseTime: 0,
    };
    assert.equal(headResponseMatches(['ETag', '"a"', 'Content-Length', '10'], stored), true);
    assert.equal(headResponseMatches(['Last-Modified', 'Mon, 01 Jan 2024 00:00:00 GMT'], stored), true);
    assert.equal(headResponseMatches([], stored), true, 'nothing to contradict it');
    assert.equal(headResponseMatches(['ETag', '"b"'], stored), false);
    assert.equal(headResponseMatches(['Last-Modified', 'Tue, 02 Jan 2024 00:00:00 GMT'], stored), false);
    assert.equal(headResponseMatches(['ETag', '"a"', 'Content-Length', '11'], stored), false);
  });

  it('applies the Set-Cookie policy: store only when explicitly cacheable, strip, pass (RFC 9111 §3.1, §7.3)', () => {
    const s = (cc: string, setCookie: SetCookiePolicy, targeted = false) =>
      storability(
        { method: 'GET', headers: [], directives: requestDirectives([]) },
        200,
        ['Set-Cookie', 'a=1', 'Last-Modified', 'Mon, 01 Jan 2024 00:00:00 GMT'],
        parseCacheControl(cc),
        { setCookie, targeted },
      );
    for (const cc of ['public', 's-maxage=60', 'max-age=60']) assert.equal(s(cc, 'store'), null, cc);
    assert.equal(s('', 'store', true), null, 'CDN-Cache-Control addresses us');
    assert.equal(s('', 'store'), 'set-cookie');
    assert.equal(s('', 'strip'), null);
    assert.equal(s('public, max-age=60', 'pass'), 'set-cookie');
    assert.deepEqual([...unstoredFields(parseCacheControl('max-age=60'), 'store')], []);
    assert.deepEqual([...unstoredFields(parseCacheControl('max-age=60'), 'strip')], ['set-cookie']);
    assert.deepEqual([...unstoredFields(parseCacheControl('private="X-A, set-cookie"'), 'store')].sort(), [
      'set-cookie',
      'x-a',
    ]);
  });

  it('decides reuse from age and directives (§4.2.4, §5.2.1, RFC 5861)', () => {
    const p = storedPolicy(parseCacheControl('max-age=10, stale-while-revalidate=5'), 10);
    const rd = (v: string) => requestDirectives(['Cache-Control', v]);
    assert.equal(reuse(p, 5, rd('')).kind, 'fresh');
    assert.equal(reuse(p, 12, rd('')).kind, 'stale-while-revalidate');
    assert.equal(reuse(p, 20, rd('')).kind, 'revalidate');
    assert.equal(reuse(p, 20, rd('max-stale=15')).kind, 'stale-ok');
    assert.deepEqual(reuse(p, 5, rd('max-age=2')), { kind: 'revalidate', reason: 'request' });
    assert.deepEqual(reuse(p, 5, rd('min-fresh=8')), { kind: 'revalidate', reason: 'request' });
    const strict = storedPolicy(parseCacheControl('max-age=10, must-revalidate'), 10);
    assert.equal(reuse(strict, 20, rd('max-stale')).kind, 'revalidate');
    assert.equal(requestDirectives(['Pragma', 'no-cache']).noCache, true);
    assert.equal(requestDirectives(['Pragma', 'no-cache', 'Cache-Control', 'max-age=5']).noCache, false);
  });

  // Regression: with no stale-while-revalidate (0), an entry whose age had just reached its lifetime was
  // served stale with a background revalidation beside the client's, two origin fetches per expiry.
  it('opens no stale window of 0 seconds: at age = lifetime the entry is revalidated (RFC 5861 §3, §4)', () => {
    const p = storedPolicy(parseCacheControl('max-age=1'), 1);
    const none = requestDirectives([]);
    assert.deepEqual(reuse(p, 1, none), { kind: 'revalidate', reason: 'stale' });
    assert.equal(staleIfErrorAllows(p, 0, none), false);
    const sie = storedPolicy(parseCacheControl('max-age=1, stale-if-error=5'), 1);
    assert.equal(staleIfErrorAllows(sie, 0, none), true);
  });

  it('normalises Vary values (§4.1)', () => {
    assert.equal(
      varyKey(['accept-encoding'], ['Accept-Encoding', 'gzip, BR']),
      varyKey(['accept-encoding'], ['accept-encoding', 'br,gzip']),
    );
    assert.notEqual(varyKey(['accept-encoding'], []), varyKey(['accept-encoding'], ['Accept-Encoding', '']));
  });

  it('matches client conditionals with weak comparison (RFC 9110 §13.1)', () => {
    const stored = (etag: string | undefined, lastModified: number | null, headers: string[] = []) => ({
      etag,
      lastModified,
      headers,
      responseTime: 784111777,
    });
    assert.equal(clientConditionalMatches(['If-None-Match', 'W/"a"'], stored('"a"', null)), true);
    assert.equal(
      clientConditionalMatches(
        ['If-None-Match', '"b"', 'If-Modified-Since', 'Sun, 06 Nov 2094 08:49:37 GMT'],
        stored('"a"', 0),
      ),
      false,
    );
    assert.equal(
      clientConditionalMatches(
        ['If-Modified-Since', 'Sun, 06 Nov 1994 08:49:37 GMT'],
        stored(undefined, 784111777),
      ),
      true,
    );
  });

  it('evaluates If-Modified-Since against the stored Date when there is no Last-Modified (RFC 9111 §4.3.2)', () => {
    const ims = (since: string, headers: string[]) =>
      clientConditionalMatches(['If-Modified-Since', since], {
        etag: undefined,
        lastModified: null,
        headers,
        responseTime: Date.UTC(2024, 0, 10, 12) / 1000,
      });
    const date = ['Date', 'Wed, 10 Jan 2024 10:00:00 GMT'];
    assert.equal(ims('Wed, 10 Jan 2024 10:00:00 GMT', date), true);
    assert.equal(ims('Wed, 10 Jan 2024 09:59:59 GMT', date), false);
    // No Date either: the time the response was received (12:00).
    assert.equal(ims('Wed, 10 Jan 2024 11:00:00 GMT', []), false);
    assert.equal(ims('Wed, 10 Jan 2024 12:00:00 GMT', []), true);
  });

  it('updates stored headers from a 304 but keeps the representation metadata (§3.2)', () => {
    const out = updateHeaders(
      ['Content-Type', 'a/b', 'Content-Length', '3', 'ETag', '"1"', 'X', 'old'],
      ['ETag', '"2"', 'X', 'new', 'Content-Length', '0'],
    );
    assert.deepEqual(out, ['Content-Type', 'a/b', 'Content-Length', '3', 'ETag', '"2"', 'X', 'new']);
  });

  it('formats Cache-Status (RFC 9211 §2)', () => {
    assert.equal(
      formatCacheStatus('cuttle', { fwd: 'uri-miss', fwdStatus: 200, stored: true, ttl: 59.6 }),
      'cuttle; fwd=uri-miss; fwd-status=200; stored; ttl=60',
    );
    assert.equal(formatCacheStatus('cuttle', { hit: true, detail: 'a "b"' }), 'cuttle; hit; detail="a b"');
  });
});
