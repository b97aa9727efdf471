/**
 * Purge by tag and soft purge through the real cluster (two workers, one LMDB): Surrogate-Key / Cache-Tag
 * stored and indexed, PURGE with Surrogate-Key across variants, Fastly-Soft-Purge marking stale.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type Cuttle,
  type Origin,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

let origin: Origin;
let cuttle: Cuttle;
const count = (path: string) => origin.seen.filter((s) => s.url === path).length;

before(async () => {
  origin = await startOrigin((req, res) => {
    const lang = String(req.headers['accept-language'] ?? 'en');
    const path = req.url ?? '/';
    if (req.headers['if-none-match'] === '"t1"') {
      res.writeHead(304, { ETag: '"t1"', 'Cache-Control': 'max-age=600' });
      return res.end();
    }
    const headers: Record<string, string> = {
      'Cache-Control': 'max-age=600',
      ETag: '"t1"',
      Vary: 'Accept-Language',
      'Content-Language': lang,
    };
    if (path.startsWith('/product')) headers['Surrogate-Key'] = 'product all';
    if (path.startsWith('/news')) headers['Cache-Tag'] = 'news, all';
    res.writeHead(200, headers);
    res.end(`${path} in ${lang}`);
  });
  cuttle = await startCuttle({ workers: 2 });
});
after(async () => {
  await cuttle.stop();
  await origin.close();
});

const get = (path: string, lang = 'en', headers: Record<string, string> = {}) =>
  viaProxy(cuttle.port, `${origin.url}${path}`, {
    agent: false,
    headers: { 'Accept-Language': lang, ...headers },
  });
const purge = (headers: Record<string, string>, path = '/') =>
  viaProxy(cuttle.port, `${origin.url}${path}`, { method: 'PURGE', agent: false, headers });
const stored = async (path: string, lang: string) => {
  const r = await get(path, lang);
  await waitStored(cuttle.cacheDir, `${origin.url}${path}`);
  return r;
};

describe('purge by tag and soft purge', () => {
  it('keeps Surrogate-Key and Cache-Tag from clients by default', async () => {
    const miss = await stored('/product/hidden', 'en');
    assert.equal(miss.headers['surrogate-key'], undefined);
    const hit = await get('/product/hidden', 'en');
    assert.match(String(hit.headers['cache-status']), /hit/);
    assert.equal(hit.headers['surrogate-key'], undefined);
  });

  it('PURGE with Surrogate-Key removes every entry with the tag, in every variant and worker, and counts them', async () => {
    await stored('/product/1', 'en');
    await stored('/product/1', 'fr');
    await stored('/product/2', 'en');
    await stored('/news/1', 'en');
    const r = await purge({ 'Surrogate-Key': 'product' });
    assert.equal(r.status, 200);
    // /product/hidden from the test before, /product/1 in two languages, /product/2.
    assert.deepEqual(JSON.parse(r.body.toString()), { purged: 4, soft: false });
    for (const [path, lang] of [
      ['/product/1', 'en'],
      ['/product/1', 'fr'],
      ['/product/2', 'en'],
    ]) {
      for (let i = 0; i < 2; i++) {
        // Twice: the two workers answer in turn, and neither may still have it.
        const again = await get(path, lang, { 'Cache-Control': 'only-if-cached' });
        assert.equal(again.status, 504, `${path} ${lang}`);
      }
    }
    assert.match(String((await get('/news/1', 'en')).headers['cache-status']), /hit/);
    const none = await purge({ 'Cache-Tag': 'no-such-tag' });
    assert.equal(none.status, 404);
    assert.deepEqual(JSON.parse(none.body.toString()), { purged: 0, soft: false });
  });

  it('Fastly-Soft-Purge: 1 marks the entries stale: the next request revalidates and is served', async () => {
    await stored('/news/2', 'en');
    const before = count('/news/2');
    const r = await purge({ 'Cache-Tag': 'news', 'Fastly-Soft-Purge': '1' });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).soft, true);
    const after = await get('/news/2', 'en');
    assert.match(String(after.headers['cache-status']), /fwd=stale; fwd-status=304/);
    assert.equal(after.body.toString(), '/news/2 in en');
    assert.equal(count('/news/2'), before + 1, 'one conditional request');
  });

  it('POST /cuttle-internal/purge takes {"urls": [...]} and {"tags": [...]}, softly on request', async () => {
    const post = (body: string, headers: Record<string, string> = {}, method = 'POST') =>
      viaProxy(cuttle.port, '/cuttle-internal/purge', { method, body, agent: false, headers });
    await stored('/news/3', 'en');
    await stored('/news/3', 'fr');
    await stored('/product/9', 'en');
    const byUrl = await post(JSON.stringify({ urls: [`${origin.url}/news/3`] }));
    assert.equal(byUrl.status, 200);
    assert.deepEqual(JSON.parse(byUrl.body.toString()), { purged: 2, soft: false }, 'both variants');
    assert.equal((await get('/news/3', 'fr', { 'Cache-Control': 'only-if-cached' })).status, 504);
    const soft = await post(JSON.stringify({ tags: ['product'], soft: true }));
    assert.deepEqual(JSON.parse(soft.body.toString()), { purged: 1, soft: true });
    assert.match(String((await get('/product/9', 'en')).headers['cache-status']), /fwd=stale/);
    const bad = await post('{"urls": "x"}');
    assert.equal(bad.status, 400);
    assert.match(bad.body.toString(), /"urls" must be a list/);
    assert.equal((await post('', {}, 'GET')).status, 405);
    const stranger = await viaProxy(cuttle.port, '/cuttle-internal/purge', {
      method: 'POST',
      body: '{"tags": ["all"]}',
      localAddress: '127.0.0.2',
    });
    assert.equal(stranger.status, 403, 'only this host may purge by default');
  });

  it('--keep-tag-headers passes the tag fields on', async () => {
    const keep = await startCuttle({ workers: 1, args: ['--keep-tag-headers'] });
    try {
      const r = await viaProxy(keep.port, `${origin.url}/product/shown`, { agent: false });
      assert.equal(r.headers['surrogate-key'], 'product all');
    } finally {
      await keep.stop();
    }
  });
});
