/**
 * The lean front end behind TLS and on HTTP/2 (workers/h2-lean.ts, and HTTPS/1.1 connections adopted by
 * lean.ts): hits answered there, against node:http and node:http2's compatibility path (`--front-end
 * node`) as the reference. Two real clusters in reverse mode with h2c and HTTPS beside the plain port,
 * one per front end, before one origin.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type ClientHttp2Session, connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, sleep, startCuttle, startOrigin, waitStored } from '../helpers/cuttle.js';
import { accessLogs, leanCount, storedIn } from '../helpers/front-ends.js';
import { freePort } from '../helpers/sockets.js';
import { certFiles, h1Request, h2Request } from '../helpers/tls.js';

let origin: Origin;
let lean: Cuttle;
let node: Cuttle;
const logOf = accessLogs('cuttle-h2-lean-');

before(async () => {
  origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, {
      'Cache-Control': req.url?.startsWith('/nostore') ? 'no-store' : 'max-age=600',
      'Content-Type': 'text/plain',
      ETag: '"v1"',
      'Set-Cookie': ['a=1', 'b=2'],
    });
    res.end(`${req.method} ${req.url}`);
  });
  const start = async (frontEnd: string) =>
    startCuttle({
      workers: 1,
      args: [
        '--origin',
        origin.url,
        '--port',
        String(await freePort()),
        '--h2c-port',
        '0',
        '--https-port',
        '0',
        '--tls-cert',
        certFiles('a.example.test').cert,
        '--tls-key',
        certFiles('a.example.test').key,
        '--front-end',
        frontEnd,
        '--access-log',
        logOf(frontEnd),
        '--set-cookie',
        'store',
      ],
    });
  [lean, node] = await Promise.all([start('lean'), start('node')]);
});
after(async () => {
  await Promise.all([lean.stop(), node.stop()]);
  await origin.close();
});

async function withH2c<T>(c: Cuttle, fn: (s: ClientHttp2Session) => Promise<T>): Promise<T> {
  const s = connect(`http://127.0.0.1:${c.h2cPort}`);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}
const stored = (path: string) => storedIn([lean, node], path);
/** The head as a comparable object: Date and Age vary between the two, ttl by a second. */
const comparable = (h: Record<string, unknown>) => {
  const { date: _date, age: _age, ...rest } = h;
  return JSON.parse(JSON.stringify(rest).replace(/ttl=\d+/g, 'ttl=N'));
};
const h2Hits = () => leanCount(lean, 'h2-hit');

describe('the lean front end on HTTP/2', () => {
  it('answers GET, HEAD, a 304 and a range from the store as the compatibility path does', async () => {
    await stored('/h2-same');
    const before = await h2Hits();
    const asks: Record<string, string>[] = [
      {},
      { ':method': 'HEAD' },
      { 'if-none-match': '"v1"' },
      { range: 'bytes=0-2' },
    ];
    for (const ask of asks) {
      const [a, b] = await Promise.all(
        [lean, node].map((c) =>
          withH2c(c, (s) => h2Request(s, '/h2-same', { ':authority': 'site.test', ...ask })),
        ),
      );
      assert.match(String(a.headers['cache-status']), /^cuttle; hit/, JSON.stringify(ask));
      assert.equal(a.status, b.status);
      assert.deepEqual(comparable(a.headers), comparable(b.headers));
      assert.deepEqual(a.body, b.body);
    }
    assert.ok((await h2Hits()) >= before + asks.length, 'every hit was answered on the core API');
    await sleep(1500);
    // Each answer was whole: no _ABORTED result for the head-only answers (HEAD, 304).
    const hits = readFileSync(logOf('lean'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('/h2-same') && l.includes('HIT'));
    assert.equal(hits.length, asks.length, hits.join('\n'));
    for (const l of hits) assert.doesNotMatch(l, /ABORTED/);
  });

  it('hands a miss and a request with a body to the compatibility path', async () => {
    const before = await h2Hits();
    const miss = await withH2c(lean, (s) => h2Request(s, '/nostore-h2', { ':authority': 'site.test' }));
    assert.equal(miss.status, 200);
    assert.match(String(miss.headers['cache-status']), /fwd=/);
    const post = await withH2c(lean, (s) =>
      h2Request(s, '/h2-post', { ':authority': 'site.test', ':method': 'POST' }, 'body'),
    );
    assert.equal(post.body.toString(), 'POST /h2-post');
    assert.equal(await h2Hits(), before);
  });

  it('answers an HTTPS/1.1 hit on the lean front end as node:http does behind TLS', async () => {
    const path = '/tls-same';
    for (const c of [lean, node]) {
      await h1Request(c.httpsPort as number, path);
      await waitStored(c.cacheDir, `http://a.example.test:${c.httpsPort}${path}`);
    }
    const before = await leanCount(lean, 'hit');
    const [a, b] = await Promise.all([lean, node].map((c) => h1Request(c.httpsPort as number, path)));
    assert.match(String(a.headers['cache-status']), /^cuttle; hit/);
    assert.equal(a.httpVersion, '1.1');
    assert.deepEqual(a.body, b.body);
    // The Host differs by the port, and with it the key and the body's echo of nothing: compare the rest.
    const rest = (h: Record<string, unknown>) => Object.keys(comparable(h)).sort();
    assert.deepEqual(rest(a.headers), rest(b.headers));
    assert.equal(await leanCount(lean, 'hit'), before + 1);
  });
});
