/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core. Skipped, saying why, only
 * when no Chromium is installed (`apt-get install chromium`; CHROMIUM=/path picks another binary).
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM, SKIP_WITHOUT_CHROMIUM } from '../helpers/chromium.js';
import {
  type Cuttle,
  type Origin,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

/** Where the screenshots go; `DASHBOARD_SCREENSHOTS=docs npm test` refreshes the README's. */
const SHOTS = process.env.DASHBOARD_SCREENSHOTS ?? tmpdir();

/** A metric's value summed over the series whose labels include every `label="value"` given. */
function total(text: string, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const i = line.lastIndexOf(' ');
    const key = line.slice(0, i);
    if (key.split('{')[0] === name && labels.every((l) => key.includes(l))) sum += Number(line.slice(i + 1));
  }
  return sum;
}

/** The [lower, upper] bounds of the histogram bucket holding the q-quantile (what interpolation may give). */
function quantileBucket(text: string, q: number, kind: string): [number, number] {
  const rows: Array<[number, number]> = [];
  const re = new RegExp(
    `^cuttle_request_duration_seconds_bucket\\{le="([^"]+)",kind="${kind}"\\} (\\S+)$`,
    'gm',
  );
  for (const m of text.matchAll(re)) rows.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  rows.sort((a, b) => a[0] - b[0]);
  const rank = q * rows[rows.length - 1][1];
  const i = rows.findIndex((r) => r[1] >= rank);
  return [i === 0 ? 0 : rows[i - 1][0], rows[i][0]];
}

describe('the dashboard in headless Chromium', {
  skip: SKIP_WITHOUT_CHROMIUM,
}, () => {
  let c: Cuttle;
  let origin: Origin;
  before(async () => {
    origin = await startOrigin((req, res) => {
      if (req.url?.startsWith('/slow')) {
        setTimeout(() => res.end('slow'), 30);
        return;
      }
      res.writeHead(200, { 'Cache-Control': 'max-age=600', 'Content-Type': 'text/plain' });
      res.end('y'.repeat(req.url === '/big' ? 20_000 : 500));
    });
    // A small bound, so the cache's fill shows.
    c = await startCuttle({ workers: 2, args: ['--cache-size', '1m'] });
  });
  after(async () => {
    await c.stop();
    await origin.close();
  });

  it('shows live figures that match /metrics, on a laptop and on a phone', async () => {
    const urls = ['/big', '/a', '/b'].map((p) => `${origin.url}${p}`);
    for (const u of urls) {
      await viaProxy(c.port, u, { agent: false });
      await waitStored(c.cacheDir, u);
    }
    for (let i = 0; i < 30; i++)
      await viaProxy(c.port, urls[i % 5 === 0 ? 0 : i % 2 ? 1 : 2], { agent: false });
    await viaProxy(c.port, `${origin.url}/slow`, { agent: false });

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox'],
    });
    let flowing = false;
    let trickle: Promise<void> = Promise.resolve();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${c.proxyUrl}/cuttle-internal/dashboard`);
      const updated = () => page.getAttribute('body', 'data-updated');
      // Three answers from stats.json, a second apart: the page is live.
      const updates = new Set<string>();
      for (let i = 0; i < 100 && updates.size < 3; i++) {
        const u = await updated();
        if (u) updates.add(u);
        await sleep(100);
      }
      assert.ok(updates.size >= 3, 'the page updates every second');

      // Quiet now: the page's figures and a scrape read back to back must agree.
      const value = async (id: string) => Number(await page.getAttribute(`#${id}`, 'data-value'));
      const shown = {
        requests: await value('requests'),
        hits: await value('hits'),
        misses: await value('misses'),
        hitRatio: await value('hit-ratio'),
        byteHitRatio: await value('byte-hit-ratio'),
        hitP50: await value('hit-p50'),
        missP50: await value('miss-p50'),
        errors: await value('upstream-errors'),
        bound: await value('cache-bound'),
        alive: await value('workers-alive'),
      };
      const text = (await viaProxy(c.port, '/cuttle-internal/metrics', { agent: false })).body.toString();
      const hits = total(text, 'cuttle_cache_hits_total');
      const misses = total(text, 'cuttle_cache_misses_total');
      const fromCache = total(text, 'cuttle_sent_bytes_total', 'source="cache"');
      const fromUpstream = total(text, 'cuttle_sent_bytes_total', 'source="upstream"');
      assert.equal(shown.hits, hits);
      assert.equal(shown.misses, misses);
      // The page's own polls are requests too: a few may have come in between.
      assert.ok(Math.abs(total(text, 'cuttle_requests_total') - shown.requests) <= 5, `${shown.requests}`);
      assert.ok(Math.abs(shown.hitRatio - hits / (hits + misses)) < 0.01);
      assert.ok(Math.abs(shown.byteHitRatio - fromCache / (fromCache + fromUpstream)) < 0.01);
      // No hit or miss since the page opened: its percentiles are since start, as /metrics' buckets are.
      for (const [kind, p50] of [
        ['hit', shown.hitP50],
        ['miss', shown.missP50],
      ] as const) {
        assert.equal(await page.getAttribute(`#${kind}-window`, 'data-value'), 'start');
        const [lo, hi] = quantileBucket(text, 0.5, kind);
        assert.ok(p50 > lo && p50 <= hi, `${kind} p50 ${p50} outside the bucket (${lo}, ${hi}] of /metrics`);
      }
      assert.equal(shown.errors, total(text, 'cuttle_upstream_errors_total'));
      assert.equal(shown.bound, total(text, 'cuttle_cache_bound_bytes'));
      assert.equal(shown.alive, 2);
      assert.equal(await page.locator('#workers tr').count(), 2);
      assert.match((await page.textContent('#workers')) ?? '', /serving/);
      assert.match((await page.textContent('#hit-ratio')) ?? '', /^\d+\.\d %$/);

      // Traffic again: req/s, the last minute's percentiles and the top URLs follow it.
      flowing = true;
      trickle = (async () => {
        while (flowing) {
          await viaProxy(c.port, urls[1], { agent: false });
          await sleep(40);
        }
      })();
      // More than the page's own polls (one a second) make.
      const live = async () =>
        (await value('rps')) > 3 && (await page.getAttribute('#hit-window', 'data-value')) === 'minute';
      for (let i = 0; i < 50 && !(await live()); i++) await sleep(100);
      assert.ok((await value('rps')) > 3, 'req/s follows the traffic');
      assert.equal(await page.getAttribute('#hit-window', 'data-value'), 'minute');
      const top = await page.locator('#top-urls tr').first().textContent();
      assert.ok(top?.includes(urls[1]), `the most hit URL first: ${top}`);
      // README's screenshot (DASHBOARD_SCREENSHOTS=docs) wants the charts filled in a little.
      await sleep(process.env.DASHBOARD_SCREENSHOTS ? 25_000 : 1500);
      await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });

      // A phone: the same page in one column, nothing wider than the screen.
      const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
      await phone.goto(`${c.proxyUrl}/cuttle-internal/dashboard`);
      await phone.waitForSelector('body[data-updated]');
      const overflow = Number(
        await phone.evaluate('document.documentElement.scrollWidth - window.innerWidth'),
      );
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
      assert.equal(await phone.getAttribute('#workers-alive', 'data-value'), '2');
      await phone.screenshot({ path: join(SHOTS, 'dashboard-phone.png'), fullPage: true });
    } finally {
      flowing = false;
      await trickle;
      await browser.close();
    }
  });
});
