/**
 * Collapsed forwarding across workers (cache/collapse.ts, main/fill-registry.ts): one origin fetch per
 * object for the whole cluster, revalidations collapsed too, uncacheable responses releasing their waiters
 * at once, and the access log and cache manager telling collapsed requests apart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, sleep, startCuttle, viaProxy, waitStored } from '../helpers/cuttle.js';
import { routedOrigin } from './harness.js';

const o = routedOrigin('/c');
const { route, hits } = o;
const wave = (c: Cuttle, url: string, n: number, headers: Record<string, string> = {}) =>
  Promise.all(
    Array.from({ length: n }, () => viaProxy(c.port, url, { agent: false, headers, timeoutMs: 30_000 })),
  );

const slowStorable = (delayMs: number, body: string) =>
  route((_q, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/plain' });
      res.end(body);
    }, delayMs);
  });

for (const workers of [2, 4]) {
  describe(`collapsed forwarding across ${workers} workers`, () => {
    let c: Cuttle;
    before(async () => {
      c = await startCuttle({ workers });
    });
    after(async () => {
      await c.stop();
    });

    it('sends one origin request for 500 concurrent requests of a cold URL', async () => {
      const url = slowStorable(500, 'cold object');
      const replies = await wave(c, url, 500);
      for (const r of replies) {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), 'cold object');
      }
      assert.equal(hits(url), 1);
      const collapsed = replies.filter((r) => /collapsed/.test(String(r.headers['cache-status'])));
      assert.ok(collapsed.length >= 400, `${collapsed.length} answers say collapsed`);
    });
  });
}

describe('collapsed revalidation and uncacheable responses across workers', () => {
  let c: Cuttle;
  before(async () => {
    c = await startCuttle({ workers: 2 });
  });
  after(async () => {
    await c.stop();
  });

  for (const swr of [false, true]) {
    const cc = swr ? ', stale-while-revalidate=60' : '';
    it(`sends one conditional request for 200 concurrent requests of a stale entry ${swr ? 'with stale-while-revalidate, serving it stale' : '(no stale-while-revalidate: they wait for it)'}`, async () => {
      let conditionals = 0;
      const url = route((q, res) => {
        if (q.headers['if-none-match'] === '"v1"') {
          conditionals++;
          setTimeout(() => {
            res.writeHead(304, { ETag: '"v1"', 'Cache-Control': `max-age=60${cc}` });
            res.end();
          }, 400);
          return;
        }
        res.writeHead(200, { ETag: '"v1"', 'Cache-Control': `max-age=1${cc}` });
        res.end('revalidated body');
      });
      await viaProxy(c.port, url, { agent: false });
      await waitStored(c.cacheDir, url);
      await sleep(2_100);
      const replies = await wave(c, url, 200);
      for (const r of replies) assert.equal(r.body.toString(), 'revalidated body');
      // The background revalidation of stale-while-revalidate may still be under way.
      if (swr) await sleep(800);
      assert.equal(conditionals, 1);
      assert.equal(hits(url), 2);
    });
  }

  it('releases every waiter at once when the response is not storable, and does not queue the next wave', async () => {
    const url = route((_q, res, n) => {
      setTimeout(() => {
        res.writeHead(200, { 'Cache-Control': 'no-store' });
        res.end(`private ${n}`);
      }, 400);
    });
    const started = Date.now();
    const first = await wave(c, url, 50);
    const firstMs = Date.now() - started;
    for (const r of first) assert.equal(r.status, 200);
    // One fetch's head (400 ms) released them all; the released ones then fetched together (400 ms more).
    assert.ok(firstMs < 2_000, `first wave took ${firstMs} ms`);
    o.most(url, true);
    const t2 = Date.now();
    const second = await wave(c, url, 50);
    const secondMs = Date.now() - t2;
    for (const r of second) assert.equal(r.status, 200);
    // Hit-for-miss in every worker: the whole wave reaches the origin together, nobody waits for a head.
    assert.equal(o.most(url), 50);
    assert.ok(secondMs < 1_500, `second wave took ${secondMs} ms`);
  });
});

describe('a request joining a fill as it ends', () => {
  // Regression: the primary's answer to a claim and the fill's end came in one IPC read; the claim was
  // settled in a later microtask, after the end had been applied, and the request waited forever.
  it('is answered: sequential requests for an object stale at once, across two workers', async () => {
    const c = await startCuttle({ workers: 2 });
    try {
      const url = route((_q, res, n) => res.end(`always stale ${n}`));
      for (let i = 0; i < 40; i++) {
        const r = await viaProxy(c.port, url, { agent: false, timeoutMs: 5_000 });
        assert.equal(r.status, 200);
      }
    } finally {
      await c.stop();
    }
  });
});

describe('collapsed requests in the access log and the cache manager', () => {
  it("logs collapsed requests with Squid's _CF tag and counts them", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-cf-'));
    const logFile = join(dir, 'access.log');
    const c = await startCuttle({ workers: 2, args: ['--access-log', logFile] });
    try {
      const url = slowStorable(400, 'logged');
      await wave(c, url, 40);
      assert.equal(hits(url), 1);
      const mgr = await viaProxy(c.port, '/squid-internal-mgr/counters', { agent: false });
      const requests = Number(/collapsed_forwarding\.requests = (\d+)/.exec(mgr.body.toString())?.[1]);
      const saved = Number(/collapsed_forwarding\.saved = (\d+)/.exec(mgr.body.toString())?.[1]);
      assert.ok(requests >= 30, mgr.body.toString());
      assert.ok(saved >= 30 && saved <= requests, mgr.body.toString());
      await sleep(500);
      const lines = readFileSync(logFile, 'utf8').trim().split('\n');
      const cf = lines.filter((l) => / TCP_CF_(HIT|MEM_HIT|MISS)\/200 /.test(l));
      assert.ok(cf.length >= 30, lines.slice(0, 5).join('\n'));
      assert.equal(lines.filter((l) => l.includes(` TCP_MISS/200 `) && l.includes(url)).length, 1);
    } finally {
      await c.stop();
    }
  });
});
