import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rawExchange, sleep, startOrigin, viaProxy, waitStored } from '../helpers/cuttle.js';
import { cacheHarness } from './harness.js';

const h = cacheHarness();
const { route, hits, get, reply, prime, status } = h;

describe('RFC 9111 §3 storing', () => {
  it('stores a GET response and serves it from any worker (shared LMDB)', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60' }));
    const first = await prime(url);
    assert.match(status(first), /^cuttle; fwd=uri-miss; fwd-status=200; stored; ttl=(59|60)$/);
    assert.equal(first.headers['x-cache'], 'MISS from edge1');
    // New connections are spread round-robin over both workers.
    for (let i = 0; i < 6; i++) {
      const r = await get(url);
      assert.equal(r.body.toString(), 'body-1');
      assert.match(status(r), /^cuttle; hit; ttl=\d+$/);
      assert.equal(r.headers['x-cache'], 'HIT from edge1');
      assert.match(String(r.headers.age), /^\d+$/);
    }
    assert.equal(hits(url), 1);
  });

  it('answers HEAD from a stored GET (§4)', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60' }));
    await prime(url);
    const h = await get(url, {}, 'HEAD');
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    assert.equal(h.headers['content-length'], '6');
    assert.match(status(h), /hit/);
    assert.equal(hits(url), 1);
  });

  it('stores heuristically cacheable statuses with Last-Modified (§4.2.2), and 5xx only with explicit freshness', async () => {
    const lm = new Date(Date.now() - 100 * 86400_000).toUTCString();
    const nf = route((_q, res) => {
      res.writeHead(404, { 'Last-Modified': lm, Date: new Date().toUTCString() });
      res.end('nope');
    });
    await prime(nf);
    const r = await get(nf);
    assert.equal(r.status, 404);
    assert.match(status(r), /hit/);
    const e500 = route((_q, res) => {
      res.writeHead(500, { 'Last-Modified': lm });
      res.end('x');
    });
    await get(e500);
    await get(e500);
    assert.equal(hits(e500), 2);
    const e503 = route((_q, res) => {
      res.writeHead(503, { 'Cache-Control': 'max-age=60' });
      res.end('down');
    });
    await prime(e503);
    assert.match(status(await get(e503)), /hit/);
  });

  it('never stores no-store or private responses (§5.2.2.5, §5.2.2.7)', async () => {
    for (const cc of ['no-store', 'private', 'private, max-age=60', 'max-age=60, no-store']) {
      const url = route(reply({ 'Cache-Control': cc }));
      const r = await get(url);
      assert.match(status(r), /fwd=uri-miss; fwd-status=200; detail="not stored: (no-store|private)"/, cc);
      await get(url);
      assert.equal(hits(url), 2, cc);
    }
  });

  it('stores no-store with must-understand for an understood status (§5.2.2.3)', async () => {
    const url = route(reply({ 'Cache-Control': 'no-store, must-understand, max-age=60' }));
    await prime(url);
    assert.match(status(await get(url)), /hit/);
  });

  it('stores Authorization requests only under §3.5', async () => {
    const plain = route(reply({ 'Cache-Control': 'max-age=60' }));
    await get(plain, { Authorization: 'Basic dTpw' });
    await get(plain, { Authorization: 'Basic dTpw' });
    assert.equal(hits(plain), 2);
    for (const cc of ['public, max-age=60', 's-maxage=60', 'must-revalidate, max-age=60']) {
      const url = route(reply({ 'Cache-Control': cc }));
      await prime(url, { Authorization: 'Basic dTpw' });
      await get(url, { Authorization: 'Basic dTpw' });
      assert.equal(hits(url), 1, cc);
    }
  });

  it('never stores Vary: *', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60', Vary: '*' }));
    await get(url);
    await get(url);
    assert.equal(hits(url), 2);
  });

  it('never stores an upstream response that ended short', async () => {
    const url = route((_q, res, n) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Length': '100000' });
      res.write(Buffer.alloc(5000, n));
      setTimeout(() => res.destroy(), 50);
    });
    const r = await rawExchange(h.cuttle().port, `GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(r.closed, true);
    await sleep(200);
    await rawExchange(h.cuttle().port, `GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(hits(url), 2, 'the truncated response was not served from the cache');
  });
});

describe('RFC 9111 §4.2 freshness', () => {
  it('prefers s-maxage over max-age (§4.2.1)', async () => {
    const url = route(reply({ 'Cache-Control': 's-maxage=60, max-age=0' }));
    await prime(url);
    assert.match(status(await get(url)), /hit/);
  });

  it('prefers max-age over Expires', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60', Expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }));
    await prime(url);
    assert.match(status(await get(url)), /hit/);
  });

  it('uses Expires minus Date, and treats an invalid Expires as already expired', async () => {
    const date = new Date();
    const good = route(
      reply({ Date: date.toUTCString(), Expires: new Date(date.getTime() + 60_000).toUTCString() }),
    );
    await prime(good);
    assert.match(status(await get(good)), /hit/);
    const bad = route(reply({ Expires: '0', ETag: '"e"' }));
    await prime(bad);
    const r = await get(bad);
    assert.match(status(r), /fwd=stale/);
    assert.equal(hits(bad), 2);
  });

  it('counts an upstream Age (§4.2.3), using the first member of a list and ignoring an invalid one', async () => {
    const aged = route(reply({ 'Cache-Control': 'max-age=100', Age: '40, 90' }));
    const first = await prime(aged);
    const ttl = Number(/ttl=(\d+)/.exec(status(first))?.[1]);
    assert.ok(ttl >= 59 && ttl <= 60, `ttl ${ttl}`);
    const hit = await get(aged);
    assert.ok(Number(hit.headers.age) >= 40);
    const invalid = route(reply({ 'Cache-Control': 'max-age=100', Age: 'soon' }));
    await prime(invalid);
    assert.match(status(await get(invalid)), /hit/);
  });

  it('applies CDN-Cache-Control (RFC 9213) instead of Cache-Control', async () => {
    const on = route(reply({ 'Cache-Control': 'no-store', 'CDN-Cache-Control': 'max-age=60' }));
    await prime(on);
    assert.match(status(await get(on)), /hit/);
    const off = route(reply({ 'Cache-Control': 'max-age=60', 'CDN-Cache-Control': 'no-store' }));
    await get(off);
    await get(off);
    assert.equal(hits(off), 2);
  });
});

describe('RFC 9111 §5.2.1 request directives', () => {
  it('max-age=0 and no-cache make the cache revalidate (fwd=request)', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60', ETag: '"a"' }));
    await prime(url);
    for (const h of [
      { 'Cache-Control': 'max-age=0' },
      { 'Cache-Control': 'no-cache' },
      { Pragma: 'no-cache' },
    ] as Record<string, string>[]) {
      const r = await get(url, h);
      assert.match(status(r), /fwd=request/, JSON.stringify(h));
    }
    assert.equal(hits(url), 4);
    // §5.4: Pragma counts only when Cache-Control is absent.
    assert.match(status(await get(url, { Pragma: 'no-cache', 'Cache-Control': 'max-stale=5' })), /hit/);
  });

  it('min-fresh beyond the remaining lifetime revalidates', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60' }));
    await prime(url);
    assert.match(status(await get(url, { 'Cache-Control': 'min-fresh=120' })), /fwd=request/);
  });

  it('max-stale accepts a stale response, unless the response says must-revalidate', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=10', Age: '20' }));
    await prime(url);
    assert.match(status(await get(url, { 'Cache-Control': 'max-stale=60' })), /hit/);
    assert.match(status(await get(url, { 'Cache-Control': 'max-stale' })), /hit/);
    const strict = route(reply({ 'Cache-Control': 'max-age=10, must-revalidate', Age: '20' }));
    await prime(strict);
    assert.match(status(await get(strict, { 'Cache-Control': 'max-stale=60' })), /fwd=stale/);
    const proxy = route(reply({ 'Cache-Control': 'max-age=10, proxy-revalidate', Age: '20' }));
    await prime(proxy);
    assert.match(status(await get(proxy, { 'Cache-Control': 'max-stale=60' })), /fwd=stale/);
  });

  it('no-store: neither served from nor written to the cache', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60' }));
    await get(url, { 'Cache-Control': 'no-store' });
    await prime(url);
    assert.equal(hits(url), 2);
    const r = await get(url, { 'Cache-Control': 'no-store' });
    assert.doesNotMatch(status(r), /hit/);
  });

  it('only-if-cached: the stored response, or 504 when nothing usable is stored', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60' }));
    const miss = await get(url, { 'Cache-Control': 'only-if-cached' });
    assert.equal(miss.status, 504);
    assert.equal(hits(url), 0);
    await prime(url);
    const hit = await get(url, { 'Cache-Control': 'only-if-cached' });
    assert.equal(hit.status, 200);
  });
});

describe('RFC 9111 §5.2.2 response directives and §4.3 validation', () => {
  it('revalidates a stale entry with its validators; a 304 updates the stored headers and serves the body (§3.2, §4.3.4)', async () => {
    const url = route((req, res, n) => {
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { ETag: '"v1"', 'Cache-Control': 'max-age=60', 'X-Version': `updated-${n}` });
        res.end();
        return;
      }
      res.writeHead(200, { ETag: '"v1"', 'Cache-Control': 'max-age=1', 'X-Version': 'original', Age: '5' });
      res.end('the body');
    });
    await prime(url);
    const r = await get(url);
    assert.match(status(r), /^cuttle; fwd=stale; fwd-status=304; ttl=\d+$/);
    assert.equal(r.body.toString(), 'the body');
    assert.equal(r.headers['x-version'], 'updated-2');
    await waitStored(h.cuttle().cacheDir, url, (e) => JSON.stringify(e).includes('updated-2'));
    const after = await get(url);
    assert.match(status(after), /hit/);
    assert.equal(after.headers['x-version'], 'updated-2');
    assert.equal(
      h
        .origin()
        .seen.filter((s) => s.url === new URL(url).pathname)
        .at(-1)?.headers['if-none-match'],
      '"v1"',
    );
  });

  it('replaces the entry when revalidation returns 200', async () => {
    const url = route((_q, res, n) => {
      res.writeHead(200, {
        'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
        'Cache-Control': n === 1 ? 'max-age=0' : 'max-age=60',
      });
      res.end(`version ${n}`);
    });
    await prime(url);
    const r = await get(url);
    assert.equal(r.body.toString(), 'version 2');
    assert.match(status(r), /fwd=stale; fwd-status=200; stored/);
    await waitStored(h.cuttle().cacheDir, url, (e) => String((e as { body?: Buffer }).body) === 'version 2');
    assert.equal(
      h
        .origin()
        .seen.filter((s) => s.url === new URL(url).pathname)
        .at(-1)?.headers['if-modified-since'],
      'Mon, 01 Jan 2024 00:00:00 GMT',
    );
    assert.equal((await get(url)).body.toString(), 'version 2');
  });

  it('unqualified no-cache revalidates every reuse; qualified no-cache drops the named fields (§5.2.2.4)', async () => {
    const url = route((req, res) => {
      if (req.headers['if-none-match']) {
        res.writeHead(304, { ETag: '"n"' });
        res.end();
        return;
      }
      res.writeHead(200, { 'Cache-Control': 'no-cache, max-age=60', ETag: '"n"' });
      res.end('nc');
    });
    await prime(url);
    assert.match(status(await get(url)), /fwd=stale; fwd-status=304/);
    assert.equal(hits(url), 2);
    const q = route(
      reply({ 'Cache-Control': 'no-cache="X-Secret", max-age=60', 'X-Secret': 's', 'X-Public': 'p' }),
    );
    await prime(q);
    const hit = await get(q);
    assert.match(status(hit), /hit/);
    assert.equal(hit.headers['x-secret'], undefined);
    assert.equal(hit.headers['x-public'], 'p');
  });

  it("answers a client's own If-None-Match and If-Modified-Since with 304 from a fresh entry (§4.3.2)", async () => {
    const url = route(
      reply({
        'Cache-Control': 'max-age=60',
        ETag: 'W/"x"',
        'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
      }),
    );
    await prime(url);
    const inm = await get(url, { 'If-None-Match': '"y", "x"' });
    assert.equal(inm.status, 304);
    assert.equal(inm.headers.etag, 'W/"x"');
    const ims = await get(url, { 'If-Modified-Since': 'Tue, 02 Jan 2024 00:00:00 GMT' });
    assert.equal(ims.status, 304);
    const old = await get(url, { 'If-Modified-Since': 'Sun, 31 Dec 2023 00:00:00 GMT' });
    assert.equal(old.status, 200);
    assert.equal(hits(url), 1);
  });
});

describe('RFC 9111 §4.1 Vary', () => {
  it('keeps one variant per normalised request value', async () => {
    const url = route((req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=60', Vary: 'Accept-Encoding' });
      res.end(`for ${req.headers['accept-encoding']}`);
    });
    assert.match(status(await prime(url, { 'Accept-Encoding': 'gzip, br' })), /uri-miss/);
    assert.match(status(await get(url, { 'Accept-Encoding': 'identity' })), /vary-miss/);
    await sleep(200);
    const a = await get(url, { 'Accept-Encoding': 'BR,gzip' });
    assert.match(status(a), /hit/);
    assert.equal(a.body.toString(), 'for gzip, br');
    assert.equal((await get(url, { 'Accept-Encoding': 'identity' })).body.toString(), 'for identity');
    assert.equal(hits(url), 2);
  });
});

describe('RFC 9111 §4.4 invalidation', () => {
  it('a non-error response to an unsafe method invalidates the URI and same-origin Location', async () => {
    const target = route(reply({ 'Cache-Control': 'max-age=60' }));
    const other = route(reply({ 'Cache-Control': 'max-age=60' }));
    const post = route((_q, res) => {
      res.writeHead(201, { Location: new URL(other).pathname });
      res.end();
    });
    await prime(target);
    await prime(other);
    await get(post, {}, 'GET');
    // POST to `post` invalidates `post` and `other` (its Location); DELETE to `target` invalidates target.
    const p = await viaProxy(h.cuttle().port, post, { method: 'POST', body: 'x', agent: false });
    assert.match(String(p.headers['cache-status']), /fwd=method/);
    await viaProxy(h.cuttle().port, target, { method: 'DELETE', agent: false });
    await sleep(100);
    assert.match(status(await get(other)), /uri-miss/);
    assert.match(status(await get(target)), /uri-miss/);
  });

  it('an error response does not invalidate', async () => {
    const url = route((req, res) => {
      if (req.method === 'POST') {
        res.writeHead(500);
        res.end();
        return;
      }
      res.writeHead(200, { 'Cache-Control': 'max-age=60' });
      res.end('kept');
    });
    await prime(url);
    await viaProxy(h.cuttle().port, url, { method: 'POST', body: 'x', agent: false });
    assert.match(status(await get(url)), /hit/);
  });
});

describe('RFC 5861', () => {
  it('stale-if-error serves the stale response on a 5xx', async () => {
    const url = route((_q, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'Cache-Control': 'max-age=1, stale-if-error=600', Age: '5' });
        res.end('good');
        return;
      }
      res.writeHead(503);
      res.end('broken');
    });
    await prime(url);
    const r = await get(url);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'good');
    // `collapsed` too when the prime's fill was still registered as under way (a loaded machine): the
    // request then waited for it before revalidating, which RFC 9211 §2.5 says; what is asserted is the rest.
    assert.match(status(r), /fwd=stale; fwd-status=503; (collapsed; )?detail="stale-if-error"/);
  });

  it('stale-if-error serves the stale response when the origin is unreachable', async () => {
    const down = await startOrigin((_q, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=1, stale-if-error=600', Age: '5' });
      res.end('remembered');
    });
    const url = `${down.url}/sie`;
    await prime(url);
    await down.close();
    const r = await get(url);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'remembered');
    const strict = await get(url, {});
    assert.equal(strict.status, 200);
  });

  it('stale-while-revalidate serves stale at once and revalidates once in the background', async () => {
    const url = route((_q, res, n) => {
      res.writeHead(200, {
        // The first generation arrives already stale; later ones stay fresh for the rest of the test.
        'Cache-Control': n === 1 ? 'max-age=1, stale-while-revalidate=600' : 'max-age=600',
        Age: n === 1 ? '5' : '0',
      });
      res.end(`gen ${n}`);
    });
    await prime(url);
    const first = await get(url);
    assert.equal(first.body.toString(), 'gen 1', 'the stale response is served at once');
    assert.match(status(first), /hit; ttl=-?\d+; detail="stale-while-revalidate"/);
    const burst = await Promise.all([get(url), get(url), get(url)]);
    for (const r of burst) assert.equal(r.status, 200);
    await waitStored(h.cuttle().cacheDir, url, (e) => String((e as { body?: Buffer }).body) !== 'gen 1');
    await sleep(200);
    // One background fetch in all, whichever of the 2 workers served the stale hits.
    assert.equal(hits(url), 2, `origin fetches: ${hits(url)}`);
    const fresh = await get(url);
    assert.match(status(fresh), /^cuttle; hit; ttl=\d+$/);
    assert.notEqual(fresh.body.toString(), 'gen 1');
  });
});

describe('RFC 9110 §14 ranges from the cache', () => {
  const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
  for (const [label, size] of [
    ['an inline body', 10_000],
    ['a chunked body, across chunk boundaries', 1024 * 1024 + 123],
  ] as const) {
    it(`answers a single range from ${label} with 206`, async () => {
      const body = pattern(size);
      const url = route((_q, res) => {
        res.writeHead(200, { 'Cache-Control': 'max-age=60', ETag: '"p"', 'Content-Length': String(size) });
        res.end(body);
      });
      await prime(url);
      for (const [range, start, end] of [
        ['bytes=0-99', 0, 99],
        ['bytes=262100-262200', 262100, 262200],
        [`bytes=-50`, size - 50, size - 1],
        [`bytes=${size - 10}-`, size - 10, size - 1],
      ] as const) {
        if (start >= size) continue;
        const r = await get(url, { Range: range });
        assert.equal(r.status, 206, range);
        assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${size}`);
        assert.deepEqual(r.body, body.subarray(start, end + 1), range);
        assert.match(status(r), /hit/);
      }
      const bad = await get(url, { Range: `bytes=${size}-` });
      assert.equal(bad.status, 416);
      assert.equal(bad.headers['content-range'], `bytes */${size}`);
      const stale = await get(url, { Range: 'bytes=0-9', 'If-Range': '"other"' });
      assert.equal(stale.status, 200);
      assert.equal(stale.body.length, size);
      assert.equal(hits(url), 1);
    });
  }

  it('answers several ranges as one multipart/byteranges 206, and coalesces overlapping ones (RFC 9110 §14.6)', async () => {
    const size = 600 * 1024;
    const body = pattern(size);
    const url = route((_q, res) => {
      res.writeHead(200, {
        'Cache-Control': 'max-age=60',
        'Content-Type': 'application/x-test',
        'Content-Length': String(size),
      });
      res.end(body);
    });
    await prime(url);
    const wanted = [
      [0, 9],
      [262140, 262150],
      [size - 5, size - 1],
    ];
    const r = await get(url, { Range: 'bytes=0-4, 5-9, 262140-262150, -5' });
    assert.equal(r.status, 206);
    const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(String(r.headers['content-type']));
    assert.ok(m, String(r.headers['content-type']));
    assert.equal(Number(r.headers['content-length']), r.body.length);
    const text = r.body.toString('latin1');
    const parts = text.split(`--${m[1]}`).slice(1, -1);
    assert.equal(parts.length, 3, 'bytes 0-4 and 5-9 coalesce');
    parts.forEach((p, i) => {
      const [start, end] = wanted[i];
      const [head, data] = p.replace(/^\r\n/, '').split('\r\n\r\n');
      assert.match(
        head,
        new RegExp(`Content-Type: application/x-test\r\nContent-Range: bytes ${start}-${end}/${size}`),
      );
      assert.deepEqual(Buffer.from(data.replace(/\r\n$/, ''), 'latin1'), body.subarray(start, end + 1));
    });
    assert.ok(text.endsWith(`--${m[1]}--\r\n`));
    assert.equal(hits(url), 1);
  });
});
