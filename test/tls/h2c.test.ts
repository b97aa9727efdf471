/**
 * Cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on its own port (`--h2c-port`), beside the
 * plain HTTP/1.1 port, sharing the cache with it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import {
  type Cuttle,
  type Origin,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';
import { freePort } from '../helpers/sockets.js';
import { h2Request } from '../helpers/tls.js';

let origin: Origin;
let c: Cuttle;

before(async () => {
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=300' });
    res.end(`clear ${req.url}\n`);
  });
});
after(async () => {
  await c?.stop();
  await origin?.close();
});

describe('h2c (--h2c-port)', () => {
  it('serves HTTP/2 with prior knowledge beside the plain port, from the same cache', async () => {
    // A fixed plain port is needed beside another listener (port 0 would mean none): take a free one.
    const free = await freePort();
    c = await startCuttle({
      workers: 2,
      args: ['--origin', origin.url, '--h2c-port', '0', '--port', String(free)],
    });
    assert.equal(c.port, free);
    const h2c = c.h2cPort as number;
    assert.ok(h2c > 0);
    assert.match(c.stdout.join('\n'), /listening on 127\.0\.0\.1:\d+ and h2c:\/\/127\.0\.0\.1:\d+ \(/);

    const first = await viaProxy(c.port, '/shared', { headers: { host: 'site.test' } });
    assert.match(String(first.headers['cache-status']), /stored/);
    await waitStored(c.cacheDir, 'http://site.test/shared');
    const s = connect(`http://127.0.0.1:${h2c}`);
    try {
      const r = await h2Request(s, '/shared', { ':authority': 'site.test' });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['cache-status']), /^cuttle; hit/);
      assert.equal(r.body.toString(), 'clear /shared\n');
    } finally {
      s.close();
    }
    if (existsSync('/usr/bin/curl')) {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          '/usr/bin/curl',
          [
            '-s',
            '--http2-prior-knowledge',
            '-o',
            '/dev/null',
            '-w',
            '%{http_version} %{http_code}',
            `http://127.0.0.1:${h2c}/x`,
          ],
          (err, o) => (err ? reject(err) : resolve(o)),
        ),
      );
      assert.equal(out, '2 200');
    }
    assert.equal(origin.seen.length, 2);
  });

  it('applies the access rules to HTTP/2 requests as to HTTP/1.1 ones', async () => {
    const denied = await startCuttle({
      workers: 1,
      args: ['--origin', origin.url, '--port', '0', '--h2c-port', '0', '--allow', '10.0.0.0/8'],
    });
    const s = connect(`http://127.0.0.1:${denied.h2cPort}`);
    try {
      const r = await h2Request(s, '/secret', { ':authority': 'site.test' });
      assert.equal(r.status, 403);
      assert.match(String(r.headers['x-squid-error']), /^ERR_ACCESS_DENIED/);
      assert.equal(r.headers.connection, undefined);
    } finally {
      s.close();
      await denied.stop();
    }
  });
});
