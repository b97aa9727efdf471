import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CLI,
  type Cuttle,
  type Origin,
  rawExchange,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

const stock = fileURLToPath(new URL('../../../test/fixtures/squid/stock.conf', import.meta.url));
let origin: Origin;
let cuttle: Cuttle;

before(async () => {
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('from origin');
  });
  cuttle = await startCuttle({ args: ['--squid-conf', stock, '--host', '127.0.0.1'] });
});
after(async () => {
  await cuttle.stop();
  await origin.close();
});

describe("--squid-conf with Debian's stock directives", () => {
  it('serves localhost', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/a`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'from origin');
  });

  it('denies a client that is not localhost (http_access deny all)', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/a`, { localAddress: '127.0.0.2' });
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-squid-error'], 'ERR_ACCESS_DENIED');
    assert.match(r.body.toString(), /http_access denies GET/);
  });

  it('refuses PURGE, even from localhost, when no acl of type method names it (as Squid)', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/a`, { method: 'PURGE' });
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-squid-error'], 'ERR_ACCESS_DENIED');
    assert.match(r.body.toString(), /PURGE is not enabled/);
  });

  it('denies ports outside Safe_ports, and CONNECT outside SSL_ports', async () => {
    const r = await viaProxy(cuttle.port, 'http://127.0.0.1:25/');
    assert.equal(r.status, 403);
    const t = await rawExchange(
      cuttle.port,
      'CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n',
    );
    assert.match(t.text, /^HTTP\/1\.1 403 /);
  });

  it('applies a dstdomain ACL read from a quoted file in an included conf.d file', async () => {
    const r = await viaProxy(cuttle.port, 'http://www.blocked.test/');
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /zz-extra\.conf:3/);
  });

  it('logs the directives it ignores once at startup', () => {
    const ignored = cuttle
      .logs()
      .filter((l) => String(l.msg).startsWith('ignored: ') && l.role === 'primary')
      .map((l) => l.msg);
    assert.ok(ignored.some((m) => /^ignored: coredump_dir \(.*stock\.conf:\d+\)$/.test(String(m))));
    assert.equal(new Set(ignored).size, ignored.length, 'each one once');
  });
});

describe('cuttle -k parse', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

  it('checks a squid.conf and reports without starting', () => {
    const r = run('-k', 'parse', '--squid-conf', stock);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /stock\.conf: OK\. forward proxy on 0\.0\.0\.0:3128/);
    assert.match(r.stdout, /^ignored: coredump_dir \(.*stock\.conf:\d+\)$/m);
  });

  it('exits 2 naming file and line for a malformed line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-kparse-'));
    const file = join(dir, 'squid.conf');
    writeFileSync(file, 'http_port 3128\nhttp_access maybe all\n');
    const r = run('-k', 'parse', '--squid-conf', file);
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`${file}:2: http_access: expected allow or deny`));
  });
});

describe('Squid header anonymisation', () => {
  let echo: Origin;
  let proxy: Cuttle;
  before(async () => {
    echo = await startOrigin((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', Server: 'secret-origin/1.0', 'X-Keep': '1' });
      res.end(JSON.stringify(req.headers));
    });
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-squidhdr-'));
    const file = join(dir, 'squid.conf');
    writeFileSync(
      file,
      `http_port 3128
acl anon src 127.0.0.1
http_access allow localhost
http_access deny all
request_header_access Referer deny anon
request_header_access User-Agent deny anon
request_header_replace User-Agent Mozilla/5.0 (cuttle test)
reply_header_access Server deny all
forwarded_for delete
via off
`,
    );
    proxy = await startCuttle({ args: ['--squid-conf', file, '--host', '127.0.0.1'] });
  });
  after(async () => {
    await proxy.stop();
    await echo.close();
  });

  it('strips Referer, replaces User-Agent, sends no X-Forwarded-For or Via of its own (anonymous)', async () => {
    const r = await viaProxy(proxy.port, `${echo.url}/h`, {
      headers: { Referer: 'http://private.example/', 'User-Agent': 'secret-browser/1', 'X-Other': 'kept' },
    });
    const seen = JSON.parse(r.body.toString()) as Record<string, string>;
    assert.equal(seen.referer, undefined);
    assert.equal(seen['user-agent'], 'Mozilla/5.0 (cuttle test)');
    assert.equal(seen['x-forwarded-for'], undefined);
    assert.equal(seen.via, undefined);
    assert.equal(seen['x-other'], 'kept');
  });

  it('filters reply headers with reply_header_access and adds no Via with via off', async () => {
    const r = await viaProxy(proxy.port, `${echo.url}/h2`);
    assert.equal(r.headers.server, undefined);
    assert.equal(r.headers['x-keep'], '1');
    assert.equal(r.headers.via, undefined);
  });

  it('does not filter clients the ACL does not name', async () => {
    // 127.0.0.2 is neither `anon` nor `localhost`: http_access denies it, and the denial keeps its headers.
    const r = await viaProxy(proxy.port, `${echo.url}/h3`, { localAddress: '127.0.0.2' });
    assert.equal(r.status, 403);
  });
});

describe('refresh_pattern', () => {
  let site: Origin;
  let proxy: Cuttle;
  let n = 0;
  before(async () => {
    site = await startOrigin((req, res) => {
      n++;
      const cc = req.url?.startsWith('/nostore/') ? { 'Cache-Control': 'no-store' } : {};
      res.writeHead(200, { 'Content-Type': 'text/plain', ...cc });
      res.end(`v${n}`);
    });
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-refresh-'));
    const file = join(dir, 'squid.conf');
    writeFileSync(
      file,
      `http_access allow localhost
refresh_pattern -i ^http://[^/]+/STATIC/ 10 20% 60 ignore-reload
refresh_pattern /nostore/ 5 20% 60 ignore-no-store
refresh_pattern /ims/ 10 20% 60 refresh-ims
refresh_pattern . 0 20% 4320
`,
    );
    proxy = await startCuttle({ args: ['--squid-conf', file, '--host', '127.0.0.1'] });
  });
  after(async () => {
    await proxy.stop();
    await site.close();
  });
  const status = (r: { headers: Record<string, unknown> }) => String(r.headers['cache-status']);

  it('gives a response without validators the min of the first matching pattern (-i)', async () => {
    const r = await viaProxy(proxy.port, `${site.url}/static/a.css`);
    assert.match(status(r), /stored; ttl=(599|600)$/);
    const other = await viaProxy(proxy.port, `${site.url}/page`);
    assert.match(
      status(other),
      /stored; ttl=-?[01]$/,
      'the catch-all pattern gives 0: stored, to be revalidated',
    );
  });

  it('ignore-reload serves a hit to a client that asks for no-cache', async () => {
    const url = `${site.url}/static/b.css`;
    await viaProxy(proxy.port, url);
    await waitStored(proxy.cacheDir, url);
    const r = await viaProxy(proxy.port, url, { headers: { 'Cache-Control': 'no-cache' } });
    assert.match(status(r), /; hit/);
  });

  it('refresh-ims revalidates a fresh object when the client sends a conditional request', async () => {
    const url = `${site.url}/ims/x`;
    await viaProxy(proxy.port, url);
    await waitStored(proxy.cacheDir, url);
    assert.match(status(await viaProxy(proxy.port, url)), /; hit/);
    const r = await viaProxy(proxy.port, url, { headers: { 'If-Modified-Since': new Date().toUTCString() } });
    assert.match(status(r), /fwd=request/);
  });

  it('ignore-no-store stores what the origin marked no-store', async () => {
    const url = `${site.url}/nostore/x`;
    const first = await viaProxy(proxy.port, url);
    assert.match(status(first), /stored; ttl=(299|300)$/);
    await waitStored(proxy.cacheDir, url);
    assert.match(status(await viaProxy(proxy.port, url)), /; hit/);
  });
});

describe('a reverse-proxy squid.conf (accel + cache_peer originserver)', () => {
  let site: Origin;
  let edge: Cuttle;
  before(async () => {
    site = await startOrigin((req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/plain' });
      res.end(`page ${req.url} for ${req.headers.host}`);
    });
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-accel-'));
    const file = join(dir, 'squid.conf');
    const port = new URL(site.url).port;
    writeFileSync(
      file,
      `http_port 127.0.0.1:80 accel defaultsite=www.example.test no-vhost
cache_peer 127.0.0.1 parent ${port} 0 no-query originserver name=web
acl site dstdomain www.example.test
http_access allow site
http_access deny all
`,
    );
    edge = await startCuttle({ args: ['--squid-conf', file] });
  });
  after(async () => {
    await edge.stop();
    await site.close();
  });

  it('serves origin-form requests from the peer, then from the cache', async () => {
    const url = '/index.html';
    const first = await viaProxy(edge.port, url, { headers: { Host: 'www.example.test' } });
    assert.equal(first.status, 200);
    assert.match(first.body.toString(), /^page \/index\.html for /);
    const key = `http://www.example.test${url}`;
    await waitStored(edge.cacheDir, key);
    const second = await viaProxy(edge.port, url, { headers: { Host: 'www.example.test' } });
    assert.match(String(second.headers['cache-status']), /; hit/);
    // no-vhost: whatever Host the client sends, the site is defaultsite (so the same stored object).
    const other = await viaProxy(edge.port, url, { headers: { Host: 'other.test' } });
    assert.match(String(other.headers['cache-status']), /; hit/);
    assert.match(other.body.toString(), /for www\.example\.test$/, 'the origin was asked for defaultsite');
  });
});
