import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Cuttle,
  type Origin,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

const mgr = (c: Cuttle, report: string, opts: Parameters<typeof viaProxy>[2] = {}) =>
  viaProxy(c.port, `/squid-internal-mgr/${report}`, { agent: false, ...opts });
const field = (text: string, name: string) =>
  Number(new RegExp(`${name}\\s*[:=]\\s*([\\d.]+)`).exec(text)?.[1]);

let origin: Origin;
before(async () => {
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=600', 'Content-Type': 'text/plain' });
    res.end('x'.repeat(1000));
  });
});
after(() => origin.close());

describe('cache manager (/squid-internal-mgr/)', () => {
  let c: Cuttle;
  before(async () => {
    c = await startCuttle({ workers: 2 });
  });
  after(() => c.stop());

  it('sums the counters of every worker: requests, hits, clients, objects', async () => {
    const url = `${origin.url}/mgr-object`;
    await viaProxy(c.port, url, { agent: false });
    await waitStored(c.cacheDir, url);
    // New connections each: the primary deals them to both workers in turn.
    for (let i = 0; i < 20; i++) await viaProxy(c.port, url, { agent: false });
    const info = (await mgr(c, 'info')).body.toString();
    assert.ok(field(info, 'Number of HTTP requests received') >= 21, info);
    assert.match(info, /kid processes:\t2/);
    assert.match(info, /Number of clients accessing cache:\t1/);
    const counters = (await mgr(c, 'counters')).body.toString();
    assert.ok(field(counters, 'client_http.hits') >= 20, counters);
    assert.equal(field(counters, 'server.all.requests'), 1);
    assert.equal(field(counters, 'store.objects'), 1);
    const objects = (await mgr(c, 'objects')).body.toString();
    assert.match(objects, new RegExp(`KEY ${url}\\n`));
  });

  it('offers the menu, utilization, and 404 for an unknown report', async () => {
    const menu = (await mgr(c, 'menu')).body.toString();
    for (const r of ['menu', 'info', 'counters', 'utilization', 'objects'])
      assert.match(menu, new RegExp(`^ ${r} .*public$`, 'm'));
    assert.match((await mgr(c, 'utilization')).body.toString(), /request_hit_ratio = [\d.]+%/);
    assert.equal((await mgr(c, 'nonesuch')).status, 404);
  });
});

describe('cache manager under a squid.conf: manager ACL and cachemgr_passwd', () => {
  let c: Cuttle;
  before(async () => {
    const stock = fileURLToPath(new URL('../../../test/fixtures/squid/stock.conf', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-mgr-'));
    const conf = join(dir, 'squid.conf');
    writeFileSync(
      conf,
      `${readFileSync(stock, 'utf8')}\ncachemgr_passwd s3cret info counters\ncachemgr_passwd disable objects\n`,
    );
    c = await startCuttle({ workers: 1, args: ['--squid-conf', conf, '--host', '127.0.0.1'] });
  });
  after(() => c.stop());

  it('asks for the password of a protected report (curl -u), hides a disabled one', async () => {
    const none = await mgr(c, 'info');
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Basic realm=/);
    const wrong = await mgr(c, 'info', {
      headers: { Authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` },
    });
    assert.equal(wrong.status, 401);
    const ok = await mgr(c, 'info', {
      headers: { Authorization: `Basic ${Buffer.from('admin:s3cret').toString('base64')}` },
    });
    assert.equal(ok.status, 200);
    assert.equal((await mgr(c, 'objects')).status, 403);
    const menu = (await mgr(c, 'menu')).body.toString();
    assert.match(menu, /^ info .*protected$/m);
    assert.match(menu, /^ objects .*hidden$/m);
  });

  it("applies the stock file's `http_access deny manager` to other clients", async () => {
    assert.equal((await mgr(c, 'menu', { localAddress: '127.0.0.2' })).status, 403);
  });
});
