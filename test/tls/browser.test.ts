/**
 * A real browser through the HTTPS edge: Debian's chromium (playwright-core) loads a page and its assets
 * over HTTP/2, and a second visit is served from the cache. Skipped, saying why, without Chromium.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM, SKIP_WITHOUT_CHROMIUM } from '../helpers/chromium.js';
import { type Cuttle, type Origin, startCuttle, startOrigin, waitStored } from '../helpers/cuttle.js';
import { certFiles } from '../helpers/tls.js';

const PAGES: Record<string, [string, string]> = {
  '/': [
    'text/html; charset=utf-8',
    '<!doctype html><html><head><link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>' +
      '<body><h1>edge</h1><img src="/logo.svg" alt="logo"><p id="out"></p></body></html>',
  ],
  '/style.css': ['text/css', 'h1 { color: rgb(1, 2, 3); }'],
  '/app.js': ['text/javascript', 'document.getElementById("out").textContent = "script ran";'],
  '/logo.svg': [
    'image/svg+xml',
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
  ],
};

let origin: Origin;
let c: Cuttle;

describe('a browser through the HTTPS edge', { skip: SKIP_WITHOUT_CHROMIUM }, () => {
  before(async () => {
    origin = await startOrigin((req, res) => {
      const page = PAGES[req.url ?? ''];
      if (!page) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': page[0], 'cache-control': 'max-age=300' });
      res.end(page[1]);
    });
    const { cert, key } = certFiles('a.example.test');
    c = await startCuttle({
      workers: 2,
      args: ['--origin', origin.url, '--https-port', '0', '--tls-cert', cert, '--tls-key', key],
    });
  });
  after(async () => {
    await c?.stop();
    await origin?.close();
  });

  it('loads a page and its assets over HTTP/2, then from the cache', async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox'],
    });
    const url = `https://127.0.0.1:${c.httpsPort}/`;
    try {
      const visit = async () => {
        // A fresh context each time: nothing comes from the browser's own cache.
        const context = await browser.newContext({ ignoreHTTPSErrors: true });
        const page = await context.newPage();
        const statuses = new Map<string, string>();
        page.on('response', (r) =>
          statuses.set(new URL(r.url()).pathname, r.headers()['cache-status'] ?? ''),
        );
        await page.goto(url, { waitUntil: 'load' });
        // Strings run in the page (no DOM types here).
        await page.waitForFunction('document.getElementById("out")?.textContent === "script ran"');
        const protocols = (await page.evaluate(
          `[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
            .map((e) => [new URL(e.name).pathname, e.nextHopProtocol])`,
        )) as Array<[string, string]>;
        const color = await page.evaluate('getComputedStyle(document.querySelector("h1")).color');
        const imageLoaded = await page.evaluate('document.querySelector("img").naturalWidth');
        await context.close();
        // The browser's own /favicon.ico request is not the page's.
        const own = protocols.filter(([path]) => path in PAGES);
        return { protocols: Object.fromEntries(own), statuses, color, imageLoaded };
      };
      const first = await visit();
      assert.deepEqual(first.protocols, {
        '/': 'h2',
        '/style.css': 'h2',
        '/app.js': 'h2',
        '/logo.svg': 'h2',
      });
      assert.equal(first.color, 'rgb(1, 2, 3)');
      assert.equal(first.imageLoaded, 10);
      for (const p of Object.keys(PAGES)) await waitStored(c.cacheDir, `http://127.0.0.1:${c.httpsPort}${p}`);
      const second = await visit();
      for (const p of Object.keys(PAGES)) assert.match(second.statuses.get(p) ?? '', /^cuttle; hit/, p);
      assert.equal(
        origin.seen.filter((r) => r.url in PAGES).length,
        4,
        'each object came from the origin once',
      );
    } finally {
      await browser.close();
    }
  });
});
