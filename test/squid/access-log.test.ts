import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AccessRecord, formatRecord, openAccessLog, squidResult } from '../../src/squid/access-log.js';
import {
  type Cuttle,
  type Origin,
  rawExchange,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

// Squid's native format: %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
const NATIVE =
  /^(\d{10})\.(\d{3}) +(\d+) (\S+) ([A-Z_]+)\/(\d{3}) (\d+) ([A-Z]+) (\S+) (\S+) (HIER_DIRECT|HIER_NONE)\/(\S+) (\S+)$/;

const record: AccessRecord = {
  end: 1764000000123,
  elapsed: 42,
  client: '127.0.0.1',
  result: 'TCP_MISS',
  status: 200,
  bytes: 1534,
  method: 'GET',
  url: 'http://example.test/a',
  user: null,
  hierarchy: 'HIER_DIRECT',
  server: '127.0.0.1',
  contentType: 'text/html',
  httpVersion: '1.1',
  referer: 'http://example.test/',
  userAgent: 'curl/8 "quoted"',
};

describe('access.log formats (Squid logformat)', () => {
  it("writes Squid's native line exactly as the issue's example", () => {
    assert.equal(
      formatRecord(record, 'squid'),
      '1764000000.123     42 127.0.0.1 TCP_MISS/200 1534 GET http://example.test/a - HIER_DIRECT/127.0.0.1 text/html\n',
    );
  });

  it('writes common and combined, escaping quotes in header values', () => {
    const common = formatRecord(record, 'common');
    assert.match(
      common,
      /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET http:\/\/example\.test\/a HTTP\/1\.1" 200 1534 TCP_MISS:HIER_DIRECT\n$/,
    );
    const combined = formatRecord(record, 'combined');
    assert.match(
      combined,
      /" 200 1534 "http:\/\/example\.test\/" "curl\/8 \\x22quoted\\x22" TCP_MISS:HIER_DIRECT\n$/,
    );
  });

  it("maps the transaction's outcome and errors to Squid result codes", () => {
    const r = (o: Partial<Parameters<typeof squidResult>[0]>) =>
      squidResult({
        method: 'GET',
        status: 200,
        outcome: 'none',
        cached: false,
        squidError: null,
        clientEtag: false,
        aborted: false,
        timedOut: false,
        ...o,
      });
    const cached = true;
    assert.equal(r({ outcome: 'hit', cached }), 'TCP_HIT');
    assert.equal(r({ outcome: 'hit', cached, memory: true }), 'TCP_MEM_HIT');
    assert.equal(r({ outcome: 'swapfail', cached }), 'TCP_SWAPFAIL_MISS');
    assert.equal(r({ outcome: 'hit', cached, status: 404 }), 'TCP_NEGATIVE_HIT');
    assert.equal(r({ outcome: 'hit', cached, status: 304, clientEtag: true }), 'TCP_INM_HIT');
    assert.equal(r({ outcome: 'hit', cached, status: 304 }), 'TCP_IMS_HIT');
    assert.equal(r({ outcome: 'miss', cached }), 'TCP_MISS');
    assert.equal(r({ outcome: 'refresh-unmodified', cached }), 'TCP_REFRESH_UNMODIFIED');
    assert.equal(r({ outcome: 'refresh-modified', cached }), 'TCP_REFRESH_MODIFIED');
    assert.equal(r({ outcome: 'refresh-fail-old', cached, status: 200 }), 'TCP_REFRESH_FAIL_OLD');
    assert.equal(r({ outcome: 'client-refresh', cached }), 'TCP_CLIENT_REFRESH_MISS');
    assert.equal(r({ status: 403, squidError: 'ERR_ACCESS_DENIED' }), 'TCP_DENIED');
    assert.equal(r({ method: 'CONNECT', outcome: 'tunnel' }), 'TCP_TUNNEL');
    assert.equal(r({ outcome: 'hit', cached, aborted: true }), 'TCP_HIT_ABORTED');
    assert.equal(r({ status: 504, squidError: 'ERR_READ_TIMEOUT', timedOut: true }), 'TCP_MISS_TIMEDOUT');
  });
});

describe('access.log writer', () => {
  // Regression: lines still buffered when the file is rotated went to the new file.
  it('puts lines buffered before a reopen into the rotated file, later ones into the new file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cuttle-reopen-')), 'access.log');
    const log = openAccessLog(file, 'squid');
    log.write({ ...record, url: 'http://example.test/old' });
    await sleep(300);
    log.write({ ...record, url: 'http://example.test/buffered' });
    renameSync(file, `${file}.0`);
    log.reopen();
    log.write({ ...record, url: 'http://example.test/new' });
    await log.close();
    assert.match(readFileSync(`${file}.0`, 'utf8'), /\/old .*\n.*\/buffered /);
    assert.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 1);
    assert.match(readFileSync(file, 'utf8'), /\/new /);
  });
});

describe('a damaged stored body (TCP_SWAPFAIL_MISS)', () => {
  it('is dropped and fetched again whole, never served short', async () => {
    const size = 600 * 1024;
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=600', 'Content-Length': String(size) });
      res.end(Buffer.alloc(size, 'z'));
    });
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-swapfail-'));
    const c = await startCuttle({ workers: 1, args: ['--access-log', join(dir, 'access.log')] });
    try {
      const url = `${origin.url}/big`;
      await viaProxy(c.port, url);
      await waitStored(c.cacheDir, url);
      // Damage the store as a disk error would: one body chunk goes missing.
      const { openCacheEnv } = await import('../../src/store/lmdb/layout.js');
      const env = openCacheEnv(c.cacheDir, 0);
      const entry = env.entries.get(url) as { bodyId: string; chunks: number };
      assert.equal(entry.chunks, 3);
      await env.bodies.remove([entry.bodyId, 1]);
      const r = await viaProxy(c.port, url);
      assert.equal(r.body.length, size);
      assert.ok(r.body.every((b) => b === 0x7a));
      assert.match(String(r.headers['cache-status']), /detail="stored body missing"/);
      await sleep(500);
      assert.match(readFileSync(join(dir, 'access.log'), 'utf8'), /TCP_SWAPFAIL_MISS\/200 \d+ GET .*\/big /);
      await env.root.close();
    } finally {
      await c.stop();
      await origin.close();
    }
  });
});

describe('access.log on standard output (--access-log -)', () => {
  it('writes whole lines from both workers to stdout', async () => {
    const origin = await startOrigin((_req, res) => res.end('ok'));
    const c = await startCuttle({ workers: 2, args: ['--access-log', '-'] });
    try {
      for (let i = 0; i < 200; i++) await viaProxy(c.port, `${origin.url}/stdout-${i}`, { agent: false });
      await sleep(600);
      const logged = c.stdout.filter((l) => l.includes('/stdout-'));
      assert.equal(logged.length, 200);
      assert.deepEqual(
        logged.filter((l) => !NATIVE.test(l)),
        [],
      );
    } finally {
      await c.stop();
      await origin.close();
    }
  });
});

describe('access.log from a running cluster', () => {
  let origin: Origin;
  let cuttle: Cuttle;
  let logFile: string;
  before(async () => {
    origin = await startOrigin((req, res) => {
      res.writeHead(200, {
        'Content-Type': 'text/plain',
        'Cache-Control': req.url?.startsWith('/c') ? 'max-age=60' : 'no-store',
      });
      res.end('ok');
    });
    logFile = join(mkdtempSync(join(tmpdir(), 'cuttle-accesslog-')), 'access.log');
    cuttle = await startCuttle({ workers: 2, config: { logfileRotate: 2 }, args: ['--access-log', logFile] });
  });
  after(async () => {
    await cuttle.stop();
    await origin.close();
  });

  const lines = async (file: string, atLeast: number, holding = '') => {
    for (let i = 0; i < 100; i++) {
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      const ls = text.split('\n').filter(Boolean);
      if (ls.length >= atLeast && text.includes(holding)) return { text, ls };
      await sleep(100);
    }
    throw new Error(`${file}: fewer than ${atLeast} lines`);
  };

  it('2 workers × 10,000 requests: one whole, parseable line each, none torn or interleaved', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 40 });
    const total = 20_000;
    let next = 0;
    const one = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const n = next++;
        const path = n % 2 ? `/c${n % 50}` : `/n${n}`;
        request({ host: '127.0.0.1', port: cuttle.port, path: `${origin.url}${path}`, agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
          .on('error', reject)
          .end();
      });
    const lane = async () => {
      while (next < total) await one();
    };
    await Promise.all(Array.from({ length: 40 }, lane));
    agent.destroy();
    const { text, ls } = await lines(logFile, total);
    assert.ok(text.endsWith('\n'));
    assert.equal(ls.length, total);
    const bad = ls.filter((l) => !NATIVE.test(l));
    assert.deepEqual(bad.slice(0, 3), [], `${bad.length} lines do not parse`);
    const pids = new Set(cuttle.workerPids());
    assert.equal(pids.size, 2);
    const codes = new Set(ls.map((l) => NATIVE.exec(l)?.[5]));
    assert.ok(codes.has('TCP_MISS') && codes.has('TCP_MEM_HIT'), [...codes].join(' '));
  });

  it('logs a refused CONNECT as TCP_DENIED with the size of the error response', async () => {
    await rawExchange(cuttle.port, 'CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n', 300);
    const { ls } = await lines(logFile, 1, 'CONNECT 127.0.0.1:8443');
    const m = NATIVE.exec(ls.find((l) => l.includes('CONNECT 127.0.0.1:8443')) ?? '');
    assert.equal(m?.[5], 'TCP_DENIED');
    assert.equal(m?.[6], '403');
    assert.ok(Number(m?.[7]) > 0, 'bytes include the error response');
  });

  it('SIGUSR1 rotates to .0 and .1 (logfile_rotate 2) and the workers write the new file', async () => {
    await viaProxy(cuttle.port, `${origin.url}/before-rotate`);
    await lines(logFile, 1, 'before-rotate');
    cuttle.proc.kill('SIGUSR1');
    await sleep(300);
    assert.ok(existsSync(`${logFile}.0`));
    await viaProxy(cuttle.port, `${origin.url}/after-rotate-1`);
    await viaProxy(cuttle.port, `${origin.url}/after-rotate-2`);
    const { text } = await lines(logFile, 2, 'after-rotate-2');
    assert.match(text, /after-rotate-1/);
    assert.doesNotMatch(text, /before-rotate/);
    assert.match(readFileSync(`${logFile}.0`, 'utf8'), /before-rotate/);
    cuttle.proc.kill('SIGUSR1');
    await sleep(300);
    assert.match(readFileSync(`${logFile}.1`, 'utf8'), /before-rotate/);
    assert.match(readFileSync(`${logFile}.0`, 'utf8'), /after-rotate-1/);
    assert.ok(!existsSync(`${logFile}.2`), 'only logfile_rotate files are kept');
  });
});

// Regressions: the log used to rebuild each request's result from the header section sent, so whatever
// changed that section (header rules, a later storing decision, a context dropped on the way) changed the log.
describe('access.log is written from the transaction record', () => {
  it('logs a hit as TCP_HIT when reply_header_access removes Cache-Status and X-Cache', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=600' });
      res.end('cached');
    });
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-hidden-cs-'));
    const conf = join(dir, 'squid.conf');
    writeFileSync(
      conf,
      `http_port 3128\nhttp_access allow localhost\nhttp_access deny all\nreply_header_access Cache-Status deny all\nreply_header_access X-Cache deny all\naccess_log ${join(dir, 'access.log')} squid\n`,
    );
    const c = await startCuttle({ workers: 1, args: ['--squid-conf', conf, '--host', '127.0.0.1'] });
    try {
      const url = `${origin.url}/hidden`;
      await viaProxy(c.port, url);
      await waitStored(c.cacheDir, url);
      const r = await viaProxy(c.port, url);
      assert.equal(r.headers['cache-status'], undefined);
      assert.equal(r.headers['x-cache'], undefined);
      await sleep(500);
      const lines = readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n');
      assert.match(lines[0], /TCP_MISS\/200 /);
      assert.match(lines[1], /TCP_(MEM_)?HIT\/200 /);
    } finally {
      await c.stop();
      await origin.close();
    }
  });

  it('logs the user of an authenticated CONNECT', async () => {
    const fixture = (name: string) =>
      fileURLToPath(new URL(`../../../test/fixtures/squid/${name}`, import.meta.url));
    const tls = createNetServer((s) => s.end());
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
    const port = (tls.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-connect-user-'));
    const conf = join(dir, 'squid.conf');
    writeFileSync(
      conf,
      `${readFileSync(fixture('auth.conf'), 'utf8').replace('/PASSWORDS', fixture('passwords'))}\naccess_log ${join(dir, 'access.log')} squid\n`,
    );
    const c = await startCuttle({ workers: 1, args: ['--squid-conf', conf, '--host', '127.0.0.1'] });
    try {
      const auth = Buffer.from('bea:bcryptsecret').toString('base64');
      const t = await rawExchange(
        c.port,
        `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`,
      );
      assert.match(t.text, /^HTTP\/1\.1 200 /);
      await sleep(500);
      assert.match(
        readFileSync(join(dir, 'access.log'), 'utf8'),
        /TCP_TUNNEL\/200 \d+ CONNECT 127\.0\.0\.1:\d+ bea /,
      );
    } finally {
      await c.stop();
      tls.close();
    }
  });

  it('logs TCP_SWAPFAIL_MISS when the refetch of a damaged entry is not storable', async () => {
    const size = 600 * 1024;
    let served = 0;
    const origin = await startOrigin((_req, res) => {
      // The first answer is stored; the refetch after the damage says no-store.
      res.writeHead(200, {
        'Cache-Control': served++ === 0 ? 'max-age=600' : 'no-store',
        'Content-Length': String(size),
      });
      res.end(Buffer.alloc(size, 'y'));
    });
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-swapfail-nostore-'));
    const c = await startCuttle({ workers: 1, args: ['--access-log', join(dir, 'access.log')] });
    const { openCacheEnv } = await import('../../src/store/lmdb/layout.js');
    const env = openCacheEnv(c.cacheDir, 0);
    try {
      const url = `${origin.url}/big-nostore`;
      await viaProxy(c.port, url);
      await waitStored(c.cacheDir, url);
      const entry = env.entries.get(url) as { bodyId: string };
      await env.bodies.remove([entry.bodyId, 1]);
      const r = await viaProxy(c.port, url);
      assert.equal(r.body.length, size);
      assert.match(String(r.headers['cache-status']), /not stored: no-store/);
      await sleep(500);
      assert.match(
        readFileSync(join(dir, 'access.log'), 'utf8'),
        /TCP_SWAPFAIL_MISS\/200 \d+ GET .*\/big-nostore /,
      );
    } finally {
      await env.root.close();
      await c.stop();
      await origin.close();
    }
  });
});
