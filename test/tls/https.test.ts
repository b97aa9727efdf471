/**
 * The HTTPS edge: TLS termination with HTTP/1.1 and HTTP/2 on one port (ALPN), against a real cluster of
 * two workers and the fixtures' certificates. curl's cases run when curl is installed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type ClientHttp2Session, constants } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, sleep, startCuttle, startOrigin, waitStored } from '../helpers/cuttle.js';
import { CA_FILE, certFiles, h1Request, h2Request, h2Session, handshake, withH2 } from '../helpers/tls.js';

const curlAt = ['/usr/bin/curl', '/usr/local/bin/curl'].find((p) => {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
});

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(curlAt as string, ['-s', '--max-time', '15', ...args], (err, out) =>
      err ? reject(err) : resolve(out),
    ),
  );
}

/** nghttp2 1.69 and later may bound rapid reset itself, before the resets reach JavaScript. */
const [nhMajor, nhMinor] = (process.versions.nghttp2 ?? '0.0').split('.').map(Number);
const nghttp2Bounds = nhMajor > 1 || (nhMajor === 1 && nhMinor >= 69);
const logDir = mkdtempSync(join(tmpdir(), 'cuttle-tls-log-'));
let origin: Origin;
let c: Cuttle;
let port: number;
let hits = 0;
let slow = 0;
const BIG = Buffer.alloc(4 * 1024 * 1024, 'abcdefghijklmnop');

before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600' });
      res.end(BIG);
      return;
    }
    if (req.url?.startsWith('/hop')) {
      // Hop-by-hop fields an HTTP/1.1 origin may send; none may reach an HTTP/2 client (RFC 9113 §8.2.2).
      res.writeHead(
        200,
        [
          ['Content-Type', 'text/plain'],
          ['Connection', 'keep-alive, X-Private'],
          ['X-Private', 'hop'],
          ['Keep-Alive', 'timeout=5'],
          ['Proxy-Connection', 'keep-alive'],
          ['Upgrade', 'h2c'],
          ['Cache-Control', 'max-age=60'],
        ].flat(),
      );
      res.end('hop\n');
      return;
    }
    if (req.url === '/slow') {
      slow++;
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' });
        res.end('slow\n');
      }, 300);
      return;
    }
    if (req.url === '/vary') {
      res.writeHead(200, {
        'content-type': 'text/plain',
        'cache-control': 'max-age=600',
        vary: 'Accept-Language',
        'content-language': String(req.headers['accept-language']),
      });
      res.end(`in ${req.headers['accept-language']}\n`);
      return;
    }
    if (req.url === '/early') {
      res.writeProcessing();
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => res.end('final\n'), 50);
      return;
    }
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => res.end(`got ${Buffer.concat(chunks).length} bytes: ${Buffer.concat(chunks)}`));
      return;
    }
    hits++;
    res.writeHead(200, {
      'content-type': 'text/plain',
      'cache-control': 'max-age=600',
      etag: '"v1"',
      'x-hits': String(hits),
    });
    res.end(`hello ${req.url}\n`);
  });
  c = await startCuttle({
    workers: 2,
    args: ['--origin', origin.url, '--https-port', '0', '--access-log', join(logDir, 'access.log')],
    config: {
      accessLogFormat: 'combined',
      tls: {
        certificates: [{ ...certFiles('a.example.test') }, { ...certFiles('b.example.test') }],
      },
    },
  });
  port = c.httpsPort as number;
});
after(async () => {
  await c?.stop();
  await origin?.close();
  rmSync(logDir, { recursive: true, force: true });
});

describe('HTTPS edge: HTTP/1.1 and HTTP/2 on one port', () => {
  it('listens for HTTPS alone with --port 0, and says so in the ready line', () => {
    assert.ok(port > 0);
    assert.equal(c.port, port);
    assert.match(c.stdout.join('\n'), /listening on https:\/\/127\.0\.0\.1:\d+ \(reverse proxy/);
  });

  it('serves HTTP/1.1 and HTTP/2 to curl on the same port (ALPN)', {
    skip: !curlAt && 'no curl',
  }, async () => {
    const url = `https://127.0.0.1:${port}/curl`;
    const v1 = await curl([
      '--http1.1',
      '--cacert',
      CA_FILE,
      '-o',
      '/dev/null',
      '-w',
      '%{http_version} %{http_code}',
      url,
    ]);
    assert.equal(v1, '1.1 200');
    const v2 = await curl([
      '--http2',
      '--cacert',
      CA_FILE,
      '-D',
      '-',
      '-w',
      '%{http_version} %{http_code}',
      url,
    ]);
    assert.match(v2, /^HTTP\/2 200/);
    assert.match(v2, /cache-status: cuttle; hit/);
    assert.match(v2, /2 200$/);
    const k = await curl(['--http2', '-k', '-o', '/dev/null', '-w', '%{http_version}', url]);
    assert.equal(k, '2');
  });

  it('serves over HTTP/2 a hit from the entry an HTTP/1.1 client stored', async () => {
    const before = hits;
    const first = await h1Request(port, '/shared');
    assert.equal(first.httpVersion, '1.1');
    assert.match(String(first.headers['cache-status']), /fwd=uri-miss; fwd-status=200; stored/);
    await waitStored(c.cacheDir, `http://a.example.test:${port}/shared`);
    await withH2(port, async (s) => {
      const r = await h2Request(s, '/shared');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['cache-status']), /^cuttle; hit/);
      assert.equal(r.headers['x-hits'], first.headers['x-hits']);
      assert.equal(r.body.toString(), 'hello /shared\n');
      assert.equal(hits, before + 1, 'the origin was asked once');
      // Conditional and range requests are answered from the same entry.
      const nm = await h2Request(s, '/shared', { 'if-none-match': '"v1"' });
      assert.equal(nm.status, 304);
      const range = await h2Request(s, '/shared', { range: 'bytes=0-4' });
      assert.equal(range.status, 206);
      assert.equal(range.body.toString(), 'hello');
      assert.equal(range.headers['content-range'], 'bytes 0-4/14');
    });
  });

  it('collapses concurrent HTTP/2 streams for one object into one origin fetch', async () => {
    await withH2(port, async (s) => {
      const replies = await Promise.all(Array.from({ length: 10 }, () => h2Request(s, '/slow')));
      assert.deepEqual(
        replies.map((r) => r.status),
        Array(10).fill(200),
      );
      assert.equal(slow, 1, 'one fetch reached the origin');
    });
  });

  it('selects Vary variants over HTTP/2 as over HTTP/1.1', async () => {
    const en = await h1Request(port, '/vary', { 'accept-language': 'en' });
    assert.equal(en.body.toString(), 'in en\n');
    await waitStored(c.cacheDir, `http://a.example.test:${port}/vary`);
    await withH2(port, async (s) => {
      for (let i = 0; i < 50; i++) {
        const again = await h2Request(s, '/vary', { 'accept-language': 'en' });
        if (/^cuttle; hit/.test(String(again.headers['cache-status']))) break;
        await sleep(50);
      }
      const hit = await h2Request(s, '/vary', { 'accept-language': 'en' });
      assert.match(String(hit.headers['cache-status']), /^cuttle; hit/);
      assert.equal(hit.body.toString(), 'in en\n');
      const fr = await h2Request(s, '/vary', { 'accept-language': 'fr' });
      assert.match(String(fr.headers['cache-status']), /fwd=vary-miss/);
      assert.equal(fr.body.toString(), 'in fr\n');
    });
  });

  it('never sends connection-specific fields on HTTP/2 (RFC 9113 §8.2.2)', async () => {
    await withH2(port, async (s) => {
      for (const path of ['/hop', '/hop']) {
        const r = await h2Request(s, path);
        assert.equal(r.status, 200);
        for (const f of [
          'connection',
          'keep-alive',
          'proxy-connection',
          'transfer-encoding',
          'upgrade',
          'x-private',
        ])
          assert.equal(r.headers[f], undefined, f);
      }
      // An error answer (ours, which on HTTP/1.1 would close the connection) neither.
      const bad = await h2Request(s, '/x', { ':authority': `a.example.test:${port}`, host: 'other.example' });
      assert.equal(bad.status, 400);
      assert.equal(bad.headers.connection, undefined);
      assert.match(bad.body.toString(), /differs from :authority/);
      // The session survives: the error was the stream's.
      assert.equal((await h2Request(s, '/hop')).status, 200);
    });
  });

  it('forwards an HTTP/2 request body, with or without Content-Length', async () => {
    await withH2(port, async (s) => {
      const withLength = await h2Request(s, '/post', { ':method': 'POST', 'content-length': '5' }, 'abcde');
      assert.equal(withLength.body.toString(), 'got 5 bytes: abcde');
      const without = await h2Request(s, '/post', { ':method': 'POST' }, 'streamed body');
      assert.equal(without.body.toString(), 'got 13 bytes: streamed body');
      // RFC 9110 §7.6.3: the protocol received, HTTP/2's version being "2".
      assert.match(String(origin.seen.at(-1)?.headers.via), /^2 \S+ \(cuttle\//);
    });
  });

  it('relays interim responses (102, 103 Early Hints) as HTTP/2 HEADERS before the final one', async () => {
    await withH2(port, async (s) => {
      const stream = s.request({ ':path': '/early' });
      const interim: Array<Record<string, unknown>> = [];
      stream.on('headers', (h) => interim.push(h));
      let final = 0;
      stream.on('response', (h) => {
        final = Number(h[':status']);
      });
      stream.resume();
      await new Promise((r) => stream.on('end', r));
      assert.equal(final, 200);
      assert.deepEqual(
        interim.map((h) => h[':status']),
        [102, 103],
      );
      assert.equal(interim[1].link, '</style.css>; rel=preload; as=style');
    });
  });

  it('streams a large object with flow control to a slow reader, whole', async () => {
    await withH2(port, async (s) => {
      for (const round of ['miss', 'hit']) {
        const stream = s.request({ ':path': '/big' });
        stream.pause();
        // Nothing read for a while: the server must wait on the window, not buffer or fail.
        await sleep(500);
        const chunks: Buffer[] = [];
        stream.on('data', (d: Buffer) => chunks.push(d));
        stream.resume();
        await new Promise((r) => stream.on('end', r));
        const body = Buffer.concat(chunks);
        assert.equal(body.length, BIG.length, round);
        assert.ok(body.equals(BIG), round);
        if (round === 'miss') await waitStored(c.cacheDir, `http://a.example.test:${port}/big`);
      }
    });
  });

  it('bounds concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS, default 100)', async () => {
    await withH2(port, async (s) => {
      await new Promise((r) =>
        s.remoteSettings.maxConcurrentStreams ? r(null) : s.once('remoteSettings', r),
      );
      assert.equal(s.remoteSettings.maxConcurrentStreams, 100);
    });
  });

  it('writes HTTP/2.0 in the combined access log', async () => {
    const s = await h2Session(port);
    await h2Request(s, '/logged');
    s.close();
    const file = join(logDir, 'access.log');
    let text = '';
    for (let i = 0; i < 50 && !/\/logged HTTP\/2\.0" 200/.test(text); i++) {
      await sleep(100);
      try {
        text = readFileSync(file, 'utf8');
      } catch {}
    }
    assert.match(text, /"GET \S*\/logged HTTP\/2\.0" 200 \d+/);
  });

  it('chooses the certificate by SNI, with the first as the default', async () => {
    assert.equal((await handshake(port, 'a.example.test')).cert.subject.CN, 'a.example.test');
    assert.equal((await handshake(port, 'b.example.test')).cert.subject.CN, 'b.example.test');
    assert.equal((await handshake(port, 'www.b.example.test')).cert.subject.CN, 'b.example.test');
    assert.equal((await handshake(port, 'unknown.example')).cert.subject.CN, 'a.example.test');
    // ALPN offers http/1.1 to a client that asks for it alone.
    assert.equal((await handshake(port, 'a.example.test')).alpn, 'http/1.1');
  });

  it('resumes TLS sessions on any worker (ticket keys shared through the primary)', async () => {
    const first = await handshake(port, 'a.example.test');
    assert.ok(first.session, 'a session ticket arrived');
    // Round robin over two workers: eight resumptions land on both.
    for (let i = 0; i < 8; i++) {
      const again = await handshake(port, 'a.example.test', first.session);
      assert.equal(again.reused, true, `resumption ${i}`);
    }
  });

  it('bounds rapid reset: the resetting client gets GOAWAY, others keep being served', async () => {
    const pids = c.workerPids();
    const attacker = await h2Session(port);
    let closed = false;
    const goaway = new Promise<number>((resolve) => {
      attacker.once('goaway', (code) => {
        closed = true;
        resolve(code);
      });
      attacker.once('close', () => {
        closed = true;
        resolve(-1);
      });
    });
    attacker.on('error', () => {});
    let sent = 0;
    // Open and cancel streams as fast as the client can, as CVE-2023-44487's attack does.
    const flood = (async () => {
      while (!closed && sent < 20_000) {
        try {
          const st = attacker.request({ ':path': `/flood/${sent}` });
          st.on('error', () => {});
          st.close(constants.NGHTTP2_CANCEL);
        } catch {
          break;
        }
        sent++;
        // A timer, not setImmediate: node's client reads the socket only once its loop waits.
        if (sent % 100 === 0) await sleep(5);
      }
    })();
    const bystander: ClientHttp2Session = await h2Session(port);
    try {
      const code = await goaway;
      await flood;
      assert.ok(code === constants.NGHTTP2_ENHANCE_YOUR_CALM || code === -1, `GOAWAY code ${code}`);
      assert.ok(sent < 20_000, `the session was closed after ${sent} resets`);
      for (let i = 0; i < 5; i++) assert.equal((await h2Request(bystander, '/bystander')).status, 200);
      // Ours closes the session with a log line. With nghttp2 1.69 or later (Node 22.23, Node 24) the
      // bundled library's own bound (a burst, then a rate) may close it first, before the resets reach
      // JavaScript: the client then sees the connection close before any GOAWAY, after 800 or 1,600
      // resets in CI-like runs. The attack is bounded either way, which is asserted above.
      const logged = c.logs().some((l) => String(l.msg).startsWith('HTTP/2 client reset too many streams'));
      if (!nghttp2Bounds) assert.ok(logged, 'our bound logged its line');
      assert.deepEqual(c.workerPids().sort(), pids.sort(), 'no worker died');
    } finally {
      bystander.close();
      attacker.destroy();
    }
  });
});
