/**
 * The cache stage in one process, over the in-memory store: the real pipeline and node:http server on
 * 127.0.0.1, an origin this test starts, no cluster and no LMDB. Fast checks of how the policy is used;
 * cache.test.ts runs the same rules through the real cluster and LMDB.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DEFAULTS } from '../../src/config/config.js';
import { createLogger } from '../../src/shared/logger.js';
import { memoryStores } from '../../src/store/memory-store.js';
import { createProxy, type ProxyServer } from '../../src/workers/server.js';
import type { Transaction } from '../../src/workers/transaction.js';
import { type Origin, sleep, startOrigin, viaProxy } from '../helpers/cuttle.js';

let origin: Origin;
let proxy: ProxyServer;
let port: number;
const stores = memoryStores();
const finished: Transaction[] = [];
const version = 1;

before(async () => {
  origin = await startOrigin((req, res) => {
    const path = req.url ?? '';
    if (path.startsWith('/slow')) {
      setTimeout(() => {
        res.writeHead(200, { 'Cache-Control': 'max-age=60' });
        res.end('slow');
      }, 200);
      return;
    }
    if (path.startsWith('/stale')) {
      if (req.headers['if-none-match'] === '"s1"') {
        setTimeout(() => {
          res.writeHead(304, { ETag: '"s1"', 'Cache-Control': 'max-age=60' });
          res.end();
        }, 200);
        return;
      }
      res.writeHead(200, { ETag: '"s1"', 'Cache-Control': 'max-age=0' });
      res.end('stale body');
      return;
    }
    if (path.startsWith('/vary')) {
      res.writeHead(200, { Vary: 'Accept-Language', 'Cache-Control': 'max-age=60' });
      res.end(`lang=${req.headers['accept-language']}`);
      return;
    }
    if (path.startsWith('/big')) {
      const body = Buffer.alloc(700 * 1024, 'b');
      body.write('start', 0);
      res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Length': String(body.length) });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'Cache-Control': 'max-age=60', ETag: `"v${version}"` });
    res.end(`version ${version}`);
  });
  const config = { ...structuredClone(DEFAULTS), port: 0, workers: 1, cacheDir: '/nonexistent' };
  proxy = createProxy(config, createLogger('silent', {}), { stores, observers: [(t) => finished.push(t)] });
  await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', () => r()));
  port = (proxy.server.address() as AddressInfo).port;
});
after(async () => {
  await proxy.shutdown(1000);
  await origin.close();
});

const last = () => finished[finished.length - 1];
const count = (path: string) => origin.seen.filter((s) => s.url === path).length;

describe('cache stage over the memory store', () => {
  it('stores a miss, then serves a hit without the origin (RFC 9111 §3, §4.2)', async () => {
    const a = await viaProxy(port, `${origin.url}/h`);
    assert.match(String(a.headers['cache-status']), /fwd=uri-miss; fwd-status=200; stored/);
    await sleep(20);
    assert.equal(last().outcome, 'miss');
    const b = await viaProxy(port, `${origin.url}/h`);
    assert.equal(b.body.toString(), 'version 1');
    assert.match(String(b.headers['cache-status']), /^cuttle; hit/);
    assert.equal(b.headers['x-cache'], `HIT from ${DEFAULTS.visibleHostname}`);
    await sleep(20);
    assert.equal(last().outcome, 'hit');
    assert.equal(last().memory, true);
    assert.equal(count('/h'), 1);
  });

  it("answers the client's own matching conditional with 304 (§4.3.2)", async () => {
    const r = await viaProxy(port, `${origin.url}/h`, { headers: { 'If-None-Match': '"v1"' } });
    assert.equal(r.status, 304);
    assert.equal(count('/h'), 1);
  });

  it('keeps Vary variants apart (§4.1)', async () => {
    const en = await viaProxy(port, `${origin.url}/vary`, { headers: { 'Accept-Language': 'en' } });
    const fr = await viaProxy(port, `${origin.url}/vary`, { headers: { 'Accept-Language': 'fr' } });
    const en2 = await viaProxy(port, `${origin.url}/vary`, { headers: { 'Accept-Language': 'en' } });
    assert.equal(en.body.toString(), 'lang=en');
    assert.equal(fr.body.toString(), 'lang=fr');
    assert.equal(en2.body.toString(), 'lang=en');
    assert.match(String(en2.headers['cache-status']), /hit/);
    assert.equal(count('/vary'), 2);
  });

  it('answers a range across chunks from a stored body (RFC 9110 §14)', async () => {
    await viaProxy(port, `${origin.url}/big`);
    const r = await viaProxy(port, `${origin.url}/big`, { headers: { Range: 'bytes=0-4' } });
    assert.equal(r.status, 206);
    assert.equal(r.body.toString(), 'start');
    const tail = await viaProxy(port, `${origin.url}/big`, { headers: { Range: 'bytes=262140-262150' } });
    assert.equal(tail.status, 206);
    assert.equal(tail.body.length, 11);
    assert.equal(count('/big'), 1);
  });

  it('revalidates a stale entry with its validator and serves the freshened one (§4.3)', async () => {
    await viaProxy(port, `${origin.url}/stale1`);
    const r = await viaProxy(port, `${origin.url}/stale1`);
    assert.equal(r.body.toString(), 'stale body');
    assert.match(String(r.headers['cache-status']), /fwd=stale; fwd-status=304/);
    await sleep(20);
    assert.equal(last().outcome, 'refresh-unmodified');
    const again = await viaProxy(port, `${origin.url}/stale1`);
    assert.match(String(again.headers['cache-status']), /hit/);
  });

  it('collapses concurrent misses into one origin fetch', async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, () => viaProxy(port, `${origin.url}/slow1`)));
    assert.ok(rs.every((r) => r.body.toString() === 'slow'));
    assert.equal(count('/slow1'), 1);
    await sleep(20);
    assert.ok(finished.some((t) => t.collapsed));
  });

  it('collapses concurrent revalidations of one stale entry into one conditional request', async () => {
    await viaProxy(port, `${origin.url}/stale2`);
    const before = count('/stale2');
    const rs = await Promise.all(Array.from({ length: 10 }, () => viaProxy(port, `${origin.url}/stale2`)));
    assert.ok(rs.every((r) => r.body.toString() === 'stale body'));
    assert.equal(count('/stale2') - before, 1);
  });

  it('invalidates after a successful unsafe method (§4.4)', async () => {
    await viaProxy(port, `${origin.url}/inv`);
    await viaProxy(port, `${origin.url}/inv`, { method: 'POST', body: 'x' });
    await sleep(20);
    const r = await viaProxy(port, `${origin.url}/inv`);
    assert.match(String(r.headers['cache-status']), /fwd=uri-miss/);
  });

  it('does not store an answer the request said no-store for (§5.2.1.5)', async () => {
    const r = await viaProxy(port, `${origin.url}/ns`, { headers: { 'Cache-Control': 'no-store' } });
    assert.match(String(r.headers['cache-status']), /not stored: request no-store/);
    assert.deepEqual(stores.store.lookup(`${origin.url}/ns`, []), { miss: 'uri-miss' });
  });
});
