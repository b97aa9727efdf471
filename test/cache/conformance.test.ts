/** RFC 9111/9110 rules beyond the basics of cache.test.ts: statuses, Set-Cookie, HEAD, stale on disconnect, POST reuse, Accept-Language, CDN-Cache-Control as a Structured Field. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startCuttle, viaProxy, waitStored } from '../helpers/cuttle.js';
import { cacheHarness } from './harness.js';

const h = cacheHarness();
const { route, hits, get, reply, prime, status } = h;

describe('RFC 9111 §3 storing', () => {
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
    await waitStored(h.cuttle().cacheDir, url, (r) => stored(r)?.headers?.includes('2') === true);
    const updated = await get(url);
    assert.match(status(updated), /hit/);
    assert.equal(updated.headers['x-version'], '2', 'fields from the HEAD response');
    assert.equal(updated.body.toString(), 'body');
    etag = '"h2"';
    await get(url, { 'Cache-Control': 'no-cache' }, 'HEAD');
    await waitStored(h.cuttle().cacheDir, url, (r) => stored(r)?.policy?.lifetime === 0);
    const stale = await get(url);
    assert.match(status(stale), /fwd=stale/, 'other validators: the stored GET is stale');
    assert.equal(stale.headers.etag, '"h2"');
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
    const edge = await startCuttle({ workers: 1, args: ['--origin', h.origin().url] });
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
});

describe('RFC 9111 §4.2 freshness', () => {
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

describe('RFC 9111 §5.2.2 response directives and §4.3 validation', () => {
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
});

describe('RFC 9111 §4.4 invalidation', () => {
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
    await waitStored(h.cuttle().cacheDir, url);
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
});

describe('RFC 5861', () => {
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
});
