import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  type Cuttle,
  type Origin,
  rawExchange,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;
const routes = new Map<string, Handler>();
const counts = new Map<string, number>();
let origin: Origin;
let cuttle: Cuttle;
let seq = 0;

/** A fresh path on the origin with its own handler; returns the absolute URL. */
function route(handler: Handler): string {
  const path = `/r${++seq}`;
  routes.set(path, handler);
  return `${origin.url}${path}`;
}
const hits = (url: string) => counts.get(new URL(url).pathname) ?? 0;
const get = (url: string, headers: Record<string, string> = {}, method = 'GET') =>
  viaProxy(cuttle.port, url, { headers, method, agent: false });
const reply =
  (headers: Record<string, string>, body = 'body') =>
  (_q: IncomingMessage, res: ServerResponse, n: number) => {
    res.writeHead(200, headers);
    res.end(`${body}-${n}`);
  };
/** The first request for a URL, then a wait until its entry is committed. */
const prime = async (url: string, headers: Record<string, string> = {}) => {
  const r = await get(url, headers);
  await waitStored(cuttle.cacheDir, url);
  return r;
};
const status = (r: { headers: Record<string, unknown> }) => String(r.headers['cache-status']);

before(async () => {
  origin = await startOrigin((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const h = routes.get(path);
    if (h) h(req, res, n);
    else {
      res.writeHead(404);
      res.end();
    }
  });
  cuttle = await startCuttle({ workers: 2, config: { visibleHostname: 'edge1' } });
});
after(async () => {
  await cuttle.stop();
  await origin.close();
});

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

  it('a 200 to HEAD updates the stored GET when its validators match, and makes it stale when not (§4.3.5)', async () => {
    // The origin ignores conditionals on HEAD: it always answers 200, with the version it holds now.
    let version = 1;
    let etag = '"h1"';
    const url = route((q, res) => {
      res.writeHead(200, {
        ETag: etag,
        'Cache-Control': 'max-age=60',
        'X-Version': String(version),
        'Content-Length': '4',
      });
      res.end(q.method === 'HEAD' ? undefined : 'body');
    });
    await prime(url);
    version = 2;
    const head = await get(url, { 'Cache-Control': 'no-cache' }, 'HEAD');
    assert.equal(head.status, 200);
    const stored = (r: unknown) => r as { headers?: string[]; policy?: { lifetime: number } } | undefined;
    await waitStored(cuttle.cacheDir, url, (r) => stored(r)?.headers?.includes('2') === true);
    const updated = await get(url);
    assert.match(status(updated), /hit/);
    assert.equal(updated.headers['x-version'], '2', 'fields from the HEAD response');
    assert.equal(updated.body.toString(), 'body');
    etag = '"h2"';
    await get(url, { 'Cache-Control': 'no-cache' }, 'HEAD');
    await waitStored(cuttle.cacheDir, url, (r) => stored(r)?.policy?.lifetime === 0);
    const stale = await get(url);
    assert.match(status(stale), /fwd=stale/, 'other validators: the stored GET is stale');
    assert.equal(stale.headers.etag, '"h2"');
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

  it('stores any final status with explicit freshness (§3), and refetches it once stale', async () => {
    for (const code of [299, 499, 599]) {
      const url = route((_q, res, n) => {
        res.writeHead(code, { 'Cache-Control': 'max-age=60' });
        res.end(`status ${code} #${n}`);
      });
      await prime(url);
      const r = await get(url);
      assert.equal(r.status, code);
      assert.match(status(r), /hit/, String(code));
      assert.equal(r.body.toString(), `status ${code} #1`);
    }
    const stale = route((_q, res, n) => {
      res.writeHead(599, { 'Cache-Control': 'max-age=0' });
      res.end(`stale #${n}`);
    });
    await prime(stale);
    const again = await get(stale);
    assert.match(status(again), /fwd=stale; fwd-status=599/);
    assert.equal(again.body.toString(), 'stale #2');
  });

  it('does not store a status it does not understand under must-understand (§5.2.2.3)', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60, must-understand' }));
    const odd = route((_q, res, n) => {
      res.writeHead(299, { 'Cache-Control': 'no-store, must-understand, max-age=60' });
      res.end(`odd ${n}`);
    });
    assert.match(status(await get(odd)), /not stored: status/);
    await get(odd);
    assert.equal(hits(odd), 2);
    await prime(url);
    assert.match(status(await get(url)), /hit/);
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

  it('stores a response with qualified private, without the fields it names (§5.2.2.7)', async () => {
    const url = route(
      reply({ 'Cache-Control': 'private="X-User", max-age=60', 'X-User': 'alice', 'X-Other': 'kept' }),
    );
    const first = await prime(url);
    assert.equal(first.headers['x-user'], 'alice');
    const hit = await get(url);
    assert.match(status(hit), /hit/);
    assert.equal(hit.headers['x-user'], undefined);
    assert.equal(hit.headers['x-other'], 'kept');
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

  it('forward mode strips Set-Cookie as Squid does: the response is stored and reused without it (RFC 9111 §3.1, §7.3)', async () => {
    const url = route(reply({ 'Cache-Control': 'max-age=60', 'Set-Cookie': 'sid=1' }));
    const first = await prime(url);
    assert.equal(
      first.headers['set-cookie']?.[0],
      'sid=1',
      'the client that caused the fetch gets its cookie',
    );
    const second = await get(url);
    assert.match(status(second), /hit/);
    assert.equal(second.headers['set-cookie'], undefined);
    assert.equal(hits(url), 1);
  });

  it('setCookie pass never stores a response that sets a cookie (Varnish)', async () => {
    const pass = await startCuttle({ workers: 1, args: ['--set-cookie', 'pass'] });
    try {
      const url = route(reply({ 'Cache-Control': 'public, max-age=60', 'Set-Cookie': 'sid=2' }));
      const r = await viaProxy(pass.port, url, { agent: false });
      assert.match(status(r), /not stored: set-cookie/);
      await viaProxy(pass.port, url, { agent: false });
      assert.equal(hits(url), 2);
    } finally {
      await pass.stop();
    }
  });

  it('an edge (--origin) stores Set-Cookie with an explicitly cacheable response and serves it; no-cache= and private= keep the field out (§5.2.2.4, §5.2.2.7)', async () => {
    const edge = await startCuttle({ workers: 1, args: ['--origin', origin.url] });
    const at = (url: string, headers: Record<string, string> = {}) =>
      viaProxy(edge.port, new URL(url).pathname, { agent: false, headers });
    const primeEdge = async (url: string) => {
      await at(url);
      await waitStored(edge.cacheDir, `${new URL(url).origin}${new URL(url).pathname}`).catch(() => {});
    };
    try {
      const explicit = route(reply({ 'Cache-Control': 'max-age=60', 'Set-Cookie': 'sid=3' }));
      await primeEdge(explicit);
      const hit = await at(explicit);
      assert.match(status(hit), /hit/);
      assert.equal(hit.headers['set-cookie']?.[0], 'sid=3');
      // Heuristic freshness is not an explicit "this is for everyone": not stored under store.
      const lm = new Date(Date.now() - 86400_000).toUTCString();
      const implicit = route(reply({ 'Last-Modified': lm, 'Set-Cookie': 'sid=4' }));
      assert.match(status(await at(implicit)), /not stored: set-cookie/);
      for (const cc of ['max-age=60, no-cache="Set-Cookie"', 'public, max-age=60, private="Set-Cookie"']) {
        const url = route(reply({ 'Cache-Control': cc, 'Set-Cookie': 'sid=5' }));
        await primeEdge(url);
        const r = await at(url, { 'Cache-Control': 'max-stale' });
        assert.equal(r.headers['set-cookie'], undefined, cc);
        // Both reuse the stored response, without the field (no revalidation is needed to leave it out).
        assert.equal(hits(url), 1, cc);
      }
      // A 304's Set-Cookie replaces the stored one, like any field (§3.2).
      const revalidated = route((q, res, n) => {
        if (q.headers['if-none-match'] === '"c1"') {
          res.writeHead(304, { ETag: '"c1"', 'Cache-Control': 'max-age=60', 'Set-Cookie': 'sid=new' });
          return res.end();
        }
        res.writeHead(200, { ETag: '"c1"', 'Cache-Control': 'max-age=0', 'Set-Cookie': `sid=old${n}` });
        res.end('body');
      });
      await primeEdge(revalidated);
      const after304 = await at(revalidated);
      assert.match(status(after304), /fwd=stale; fwd-status=304/);
      assert.equal(after304.headers['set-cookie']?.[0], 'sid=new');
    } finally {
      await edge.stop();
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
    const r = await rawExchange(cuttle.port, `GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(r.closed, true);
    await sleep(200);
    await rawExchange(cuttle.port, `GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(hits(url), 2, 'the truncated response was not served from the cache');
  });
});

describe('RFC 9111 §4.2 freshness', () => {
  it('prefers s-maxage over max-age (§4.2.1)', async () => {
    const url = route(reply({ 'Cache-Control': 's-maxage=60, max-age=0' }));
    await prime(url);
    assert.match(status(await get(url)), /hit/);
  });

  it('reads an Expires whose names are in another case (RFC 9110 §5.6.7)', async () => {
    const url = route(reply({ Expires: 'thu, 01 JAN 2099 00:00:00 gmt' }));
    await prime(url);
    assert.match(status(await get(url)), /hit/);
  });

  it('gives heuristic freshness to a 302 marked public (§4.2.2)', async () => {
    const lm = new Date(Date.now() - 10 * 86400_000).toUTCString();
    const url = route((_q, res) => {
      res.writeHead(302, { Location: '/elsewhere', 'Cache-Control': 'public', 'Last-Modified': lm });
      res.end();
    });
    await prime(url);
    const r = await get(url);
    assert.equal(r.status, 302);
    assert.match(status(r), /hit/);
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

  it('ignores a CDN-Cache-Control that is not a valid Structured Field dictionary, entirely (RFC 9213 §2.1)', async () => {
    for (const bad of [
      'max-age = 60',
      'max-age="60"',
      'max-age=60.5',
      'MAX-AGE=60',
      'max-age=60, no-store=1',
    ]) {
      // Were the field used, max-age=60 would store it; ignored, Cache-Control's no-store decides.
      const url = route(reply({ 'Cache-Control': 'no-store', 'CDN-Cache-Control': bad }));
      assert.match(status(await get(url)), /not stored: no-store/, bad);
    }
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
    await waitStored(cuttle.cacheDir, url, (e) => JSON.stringify(e).includes('updated-2'));
    const after = await get(url);
    assert.match(status(after), /hit/);
    assert.equal(after.headers['x-version'], 'updated-2');
    assert.equal(
      origin.seen.filter((s) => s.url === new URL(url).pathname).at(-1)?.headers['if-none-match'],
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
    await waitStored(cuttle.cacheDir, url, (e) => String((e as { body?: Buffer }).body) === 'version 2');
    assert.equal(
      origin.seen.filter((s) => s.url === new URL(url).pathname).at(-1)?.headers['if-modified-since'],
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

  it('evaluates If-Modified-Since against the stored Date when there is no Last-Modified (§4.3.2)', async () => {
    const date = new Date(Date.now() - 3600_000).toUTCString();
    const url = route(reply({ Date: date, 'Cache-Control': 'max-age=7200' }));
    await prime(url);
    const same = await get(url, { 'If-Modified-Since': date });
    assert.equal(same.status, 304);
    const before = await get(url, { 'If-Modified-Since': new Date(Date.now() - 7200_000).toUTCString() });
    assert.equal(before.status, 200);
    assert.equal(hits(url), 1);
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
  it("normalises Accept-Language and serves the variant in the client's first-choice language (RFC 9110 §12.5.4)", async () => {
    // The origin answers in English or French, whichever the client weighs more.
    const url = route((q, res, n) => {
      const al = String(q.headers['accept-language'] ?? '');
      const fr = /fr(?![^,]*q=0\.[0-4])/i.test(al) && !/^\s*en/i.test(al);
      res.writeHead(200, {
        Vary: 'Accept-Language',
        'Content-Language': fr ? 'fr' : 'en',
        'Cache-Control': 'max-age=60',
      });
      res.end(`${fr ? 'fr' : 'en'} #${n}`);
    });
    await prime(url, { 'Accept-Language': 'en' });
    for (const al of ['EN', 'en;q=1.0', 'fr;q=0.5, en', 'en-GB;q=0.9, en']) {
      const r = await get(url, { 'Accept-Language': al });
      assert.match(status(r), /hit/, al);
      assert.equal(r.body.toString(), 'en #1', al);
    }
    // The client prefers German: an English variant is not its first choice.
    const de = await get(url, { 'Accept-Language': 'de, en;q=0.8' });
    assert.match(status(de), /fwd=vary-miss/);
  });

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
    const p = await viaProxy(cuttle.port, post, { method: 'POST', body: 'x', agent: false });
    assert.match(String(p.headers['cache-status']), /fwd=method/);
    await viaProxy(cuttle.port, target, { method: 'DELETE', agent: false });
    await sleep(100);
    assert.match(status(await get(other)), /uri-miss/);
    assert.match(status(await get(target)), /uri-miss/);
  });

  it('stores a POST response with explicit freshness and its own URI as Content-Location for later GETs (RFC 9110 §9.3.3)', async () => {
    const url = route((q, res, n) => {
      const self = new URL(url).pathname;
      if (q.method === 'POST') {
        res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Location': self });
        return res.end(`posted #${n}`);
      }
      res.writeHead(200, { 'Cache-Control': 'max-age=60' });
      res.end(`got #${n}`);
    });
    const posted = await get(url, {}, 'POST');
    assert.match(status(posted), /fwd=method; fwd-status=200; stored/);
    await waitStored(cuttle.cacheDir, url);
    const r = await get(url);
    assert.match(status(r), /hit/);
    assert.equal(r.body.toString(), 'posted #1');
    // Without explicit freshness, or naming another URI, it is not reused.
    const other = route((q, res, n) => {
      res.writeHead(
        200,
        q.method === 'POST' ? { 'Content-Location': '/elsewhere', 'Cache-Control': 'max-age=60' } : {},
      );
      res.end(`#${n}`);
    });
    assert.doesNotMatch(status(await get(other, {}, 'POST')), /stored/);
    assert.equal((await get(other)).body.toString(), '#2');
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
    await viaProxy(cuttle.port, url, { method: 'POST', body: 'x', agent: false });
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
    assert.match(status(r), /fwd=stale; fwd-status=503; detail="stale-if-error"/);
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

  it('serves a stale response when the origin cannot be reached, as Squid does (RFC 9111 §4.2.4)', async () => {
    // The first answer is stored already stale; every later connection is cut before any answer.
    const cut = (cc: string) =>
      route((q, res, n) => {
        if (n > 1) return q.socket.destroy();
        res.writeHead(200, { 'Cache-Control': cc, ETag: '"d1"' });
        res.end('kept');
      });
    const allowed = cut('max-age=0');
    await prime(allowed);
    const r = await get(allowed);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'kept');
    assert.match(status(r), /fwd=stale; detail="origin unreachable"/);
    // §4.2.4 forbids it for must-revalidate, proxy-revalidate, s-maxage (§5.2.2.10) and no-cache.
    for (const cc of [
      'max-age=0, must-revalidate',
      'max-age=0, proxy-revalidate',
      's-maxage=0',
      'no-cache',
    ]) {
      const url = cut(cc);
      await prime(url);
      const denied = await get(url);
      assert.equal(denied.status, 502, cc);
      // Squid's name for a connection closed before any answer.
      assert.equal(denied.headers['x-squid-error'], 'ERR_ZERO_SIZE_OBJECT', cc);
    }
  });

  it('serves stale on an unreachable origin only within maxStale (max_stale)', async () => {
    const strict = await startCuttle({ workers: 1, config: { maxStale: '0s' } });
    try {
      const url = route((q, res, n) => {
        if (n > 1) return q.socket.destroy();
        res.writeHead(200, { 'Cache-Control': 'max-age=0', Age: '5', ETag: '"m1"' });
        res.end('too old');
      });
      await viaProxy(strict.port, url, { agent: false });
      await waitStored(strict.cacheDir, url);
      const r = await viaProxy(strict.port, url, { agent: false });
      assert.equal(r.status, 502);
    } finally {
      await strict.stop();
    }
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
    await waitStored(cuttle.cacheDir, url, (e) => String((e as { body?: Buffer }).body) !== 'gen 1');
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
});

describe('collapsed forwarding', () => {
  it('sends one request to the origin for concurrent misses of a storable object in a worker', async () => {
    const one = await startCuttle({ workers: 1 });
    try {
      const url = route((_q, res, n) => {
        setTimeout(() => {
          res.writeHead(200, { 'Cache-Control': 'max-age=60' });
          res.end(`slow ${n}`);
        }, 300);
      });
      const replies = await Promise.all(
        Array.from({ length: 20 }, () => viaProxy(one.port, url, { agent: false })),
      );
      for (const r of replies) assert.equal(r.body.toString(), 'slow 1');
      assert.equal(hits(url), 1);
    } finally {
      await one.stop();
    }
  });

  // Regression: when every client of a collapsed miss hung up, a waiter with no client became the next
  // leader, its fetch was aborted without releasing the queue, and later requests for the URL hung.
  it('keeps answering a URL after all the clients waiting for it hung up', async () => {
    const one = await startCuttle({ workers: 1 });
    try {
      const url = route((_q, res, n) => {
        setTimeout(() => {
          res.writeHead(200, { 'Cache-Control': 'max-age=60' });
          res.end(`late ${n}`);
        }, 300);
      });
      const request = `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`;
      const client = () => {
        const s = connect(one.port, '127.0.0.1');
        s.on('error', () => {});
        s.write(request);
        return s;
      };
      const leader = client();
      await sleep(50);
      const waiters = Array.from({ length: 4 }, client);
      await sleep(50);
      // The waiters leave first, then the leader, whose departure hands the fetch to a waiter.
      for (const s of waiters) s.destroy();
      await sleep(50);
      leader.destroy();
      await sleep(50);
      const r = await viaProxy(one.port, url, { agent: false, timeoutMs: 5_000 });
      assert.equal(r.status, 200);
      assert.match(r.body.toString(), /^late \d$/);
    } finally {
      await one.stop();
    }
  });

  it('remembers a response that was not storable: the next wave goes to the origin at once (hit-for-miss)', async () => {
    const wave = async (port: number, url: string) =>
      Promise.all(Array.from({ length: 5 }, () => viaProxy(port, url, { agent: false })));
    const withWindow = await startCuttle({ workers: 1 });
    const without = await startCuttle({ workers: 1, args: ['--hit-for-miss', '0'] });
    try {
      for (const [c, expected] of [
        [withWindow, 5],
        [without, 4],
      ] as const) {
        // The origin answers only once it has seen every request it is going to see together.
        let inFlight = 0;
        let most = 0;
        const url = route((_q, res, n) => {
          inFlight++;
          most = Math.max(most, inFlight);
          setTimeout(() => {
            inFlight--;
            res.writeHead(200, { 'Cache-Control': 'no-store' });
            res.end(`private ${n}`);
          }, 300);
        });
        await viaProxy(c.port, url, { agent: false });
        most = 0;
        for (const r of await wave(c.port, url)) assert.equal(r.status, 200);
        // With the window all five reach the origin together; without it, four wait for the first's head.
        assert.equal(most, expected, `--hit-for-miss ${c === without ? '0' : 'default'}`);
      }
    } finally {
      await withWindow.stop();
      await without.stop();
    }
  });

  it('gives Age to a response that was delayed 1 s or more in the cache: collapsed waiters, a slow revalidation (RFC 9111 §5.1, §4.2.3)', async () => {
    const slow = route((q, res) => {
      setTimeout(() => {
        if (q.headers['if-none-match'] === '"a1"') {
          res.writeHead(304, { ETag: '"a1"', 'Cache-Control': 'max-age=60' });
          return res.end();
        }
        res.writeHead(200, { ETag: '"a1"', 'Cache-Control': 'max-age=60', Date: new Date().toUTCString() });
        res.end('slow');
      }, 1200);
    });
    const one = await startCuttle({ workers: 1 });
    try {
      const replies = await Promise.all(
        Array.from({ length: 3 }, () => viaProxy(one.port, slow, { agent: false })),
      );
      const waiters = replies.filter((r) => /hit/.test(status(r)));
      assert.ok(waiters.length >= 1, replies.map(status).join(' | '));
      for (const w of waiters) assert.ok(Number(w.headers.age) >= 1, `Age ${w.headers.age}`);
      // A revalidation that took over a second: the 304's own delay is in the Age of what is served.
      await waitStored(one.cacheDir, slow);
      const reval = await viaProxy(one.port, slow, {
        agent: false,
        headers: { 'Cache-Control': 'no-cache' },
      });
      assert.match(status(reval), /fwd=request; fwd-status=304/);
      assert.ok(Number(reval.headers.age) >= 1, `Age ${reval.headers.age}`);
    } finally {
      await one.stop();
    }
  });

  it('does not queue requests behind a response that will not be stored', async () => {
    const one = await startCuttle({ workers: 1 });
    try {
      const url = route((_q, res, n) => {
        setTimeout(() => {
          res.writeHead(200, { 'Cache-Control': 'no-store' });
          res.end(`private ${n}`);
        }, 100);
      });
      const replies = await Promise.all(
        Array.from({ length: 5 }, () => viaProxy(one.port, url, { agent: false })),
      );
      for (const r of replies) assert.equal(r.status, 200);
      assert.equal(hits(url), 5);
    } finally {
      await one.stop();
    }
  });
});
