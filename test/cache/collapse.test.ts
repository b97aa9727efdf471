/** Collapsed forwarding within a worker, hit-for-miss, and the Age of delayed responses. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { sleep, startCuttle, viaProxy, waitStored } from '../helpers/cuttle.js';
import { cacheHarness } from './harness.js';

const h = cacheHarness();
const { route, hits, status } = h;

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
