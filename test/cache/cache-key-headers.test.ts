/**
 * Cache poisoning through unkeyed inputs: an origin that reflects X-Forwarded-Host into a cacheable
 * response without listing it in Vary. Without --cache-key-headers the first client's value is served to
 * everyone (the risk README describes); with it, each value is its own stored variant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { selectingFields } from '../../src/cache/key.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import {
  type Cuttle,
  type Origin,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

let origin: Origin;
before(async () => {
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/html' });
    res.end(`<script src="//${req.headers['x-forwarded-host'] ?? req.headers.host}/app.js"></script>`);
  });
});
after(() => origin.close());

const get = (c: Cuttle, path: string, xfh?: string) =>
  viaProxy(c.port, `${origin.url}${path}`, { headers: xfh ? { 'X-Forwarded-Host': xfh } : {} });

describe('--cache-key-headers', () => {
  it('without it, an unkeyed X-Forwarded-Host poisons the stored response (the documented risk)', async () => {
    const c = await startCuttle({ workers: 1 });
    try {
      const first = await get(c, '/plain', 'evil.example');
      assert.match(first.body.toString(), /evil\.example/);
      await waitStored(c.cacheDir, `${origin.url}/plain`);
      const victim = await get(c, '/plain');
      assert.match(String(victim.headers['cache-status']), /hit/);
      assert.match(victim.body.toString(), /evil\.example/);
    } finally {
      await c.stop();
    }
  });

  for (const how of ['flag', 'config'] as const) {
    it(`with it (${how}), each value of the field is its own variant`, async () => {
      const c = await startCuttle({
        workers: 2,
        ...(how === 'flag'
          ? { args: ['--cache-key-headers', 'X-Forwarded-Host,X-Forwarded-Scheme'] }
          : { config: { cacheKeyHeaders: ['X-Forwarded-Host'] } }),
      });
      try {
        const path = `/keyed-${how}`;
        const evil = await get(c, path, 'evil.example');
        assert.match(evil.body.toString(), /evil\.example/);
        await waitStored(c.cacheDir, `${origin.url}${path}`);
        const victim = await get(c, path);
        assert.doesNotMatch(victim.body.toString(), /evil\.example/);
        assert.match(String(victim.headers['cache-status']), /fwd=vary-miss/);
        assert.equal(victim.headers.vary, undefined, 'the response sent is not rewritten');
        await waitStored(
          c.cacheDir,
          `${origin.url}${path}`,
          (r) => (r as { variants?: string[] }).variants?.length === 2,
        );
        for (const [xfh, want] of [
          ['evil.example', /evil\.example/],
          [undefined, /127\.0\.0\.1/],
          ['EVIL.example', /EVIL\.example/],
        ] as const) {
          const r = await get(c, path, xfh);
          assert.match(r.body.toString(), want);
        }
        const hit = await get(c, path);
        assert.match(String(hit.headers['cache-status']), /hit/);
        assert.match(hit.body.toString(), /127\.0\.0\.1/);
      } finally {
        await c.stop();
      }
    });
  }

  it('joins the response Vary, lower-cased and sorted; validates names', () => {
    assert.deepEqual(selectingFields(['accept-encoding'], ['x-forwarded-host']), [
      'accept-encoding',
      'x-forwarded-host',
    ]);
    assert.deepEqual(selectingFields(null, ['x-forwarded-host']), ['x-forwarded-host']);
    assert.equal(selectingFields(null, []), null);
    assert.deepEqual(
      loadConfig(['--cache-key-headers', 'X-B,x-a', '--cache-key-headers', 'X-A']).config.cacheKeyHeaders,
      ['x-a', 'x-b'],
    );
    assert.deepEqual(loadConfig([]).config.cacheKeyHeaders, []);
    assert.throws(() => loadConfig(['--cache-key-headers', 'bad name']), ConfigError);
  });
});
