/**
 * One cuttle with one non-CARP parent, a recording stand-in for a parent proxy: what a parent is sent
 * (absolute form, Via, the client's credentials with login=PASS), proxy-only, cache_peer_access,
 * nonhierarchical_direct, and the hierarchy codes in access.log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, sleep, startCuttle, startOrigin, viaProxy } from '../helpers/cuttle.js';
import { cacheableOrigin } from '../helpers/fleet.js';

const dir = mkdtempSync(join(tmpdir(), 'cuttle-parent-'));
const log = join(dir, 'access.log');
let origin: Origin;
let parent: Origin;
let cuttle: Cuttle;

before(async () => {
  origin = await cacheableOrigin();
  // A parent proxy that answers every request itself, cacheable, naming what it was asked.
  parent = await startOrigin((req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=600', 'Content-Type': 'text/plain' });
    res.end(`parent answered ${req.url}`);
  });
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    [
      'acl api urlpath_regex ^/api/',
      'http_access allow all',
      `cache_peer 127.0.0.1 parent ${parent.port} 0 no-query proxy-only login=PASS name=up1`,
      'cache_peer_access up1 deny api',
      'cache_peer_access up1 allow all',
      `access_log stdio:${log} squid`,
      '',
    ].join('\n'),
  );
  cuttle = await startCuttle({ workers: 1, args: ['--squid-conf', conf] });
});
after(async () => {
  await cuttle.stop();
  await Promise.all([origin.close(), parent.close()]);
});

describe('a parent proxy (cache_peer … parent)', () => {
  it('is asked in absolute form with Via, and gets the client credentials with login=PASS', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/page`, {
      headers: { 'Proxy-Authorization': 'Basic dTpw' },
    });
    assert.equal(r.body.toString(), `parent answered ${origin.url}/page`);
    const seen = parent.seen.at(-1);
    assert.equal(seen?.url, `${origin.url}/page`);
    assert.match(String(seen?.headers.via), /^1\.1 \S+ \(cuttle\//);
    assert.equal(seen?.headers['proxy-authorization'], 'Basic dTpw');
    assert.equal(origin.seen.length, 0);
  });

  it('proxy-only: its answer is not stored here', async () => {
    const before = parent.seen.length;
    const r = await viaProxy(cuttle.port, `${origin.url}/page`);
    assert.doesNotMatch(String(r.headers['cache-status']), /, cuttle; hit/);
    assert.equal(parent.seen.length, before + 1);
  });

  it('cache_peer_access deny: the request goes direct', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/api/x`);
    assert.equal(r.body.toString(), 'body of /api/x');
    assert.equal(origin.seen.at(-1)?.url, '/api/x');
  });

  it('nonhierarchical_direct (on by default): a POST goes direct', async () => {
    const before = parent.seen.length;
    const r = await viaProxy(cuttle.port, `${origin.url}/form`, { method: 'POST', body: 'a=1' });
    assert.equal(r.body.toString(), 'body of /form');
    assert.equal(parent.seen.length, before);
  });

  it('access.log: FIRSTUP_PARENT/<parent host> and HIER_DIRECT/<origin host>', async () => {
    await sleep(200);
    const text = readFileSync(log, 'utf8');
    assert.match(text, / TCP_MISS\/200 \d+ GET \S+\/page - FIRSTUP_PARENT\/127\.0\.0\.1 text\/plain\n/);
    assert.match(text, / TCP_MISS\/200 \d+ GET \S+\/api\/x - HIER_DIRECT\/127\.0\.0\.1 /);
  });
});
