/**
 * The lean front end (workers/lean.ts), against node:http as the reference: two real clusters in reverse
 * mode before one origin, one per front end, fed the same exchanges on raw sockets. Whatever the lean one
 * answers itself (hits) must look exactly as node:http's answer would, and everything else must reach
 * node:http with its bytes intact, in order.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  type Cuttle,
  type Origin,
  rawExchange,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
} from '../helpers/cuttle.js';
import { accessLogs, leanCount, storedIn } from '../helpers/front-ends.js';

const BIG = 300 * 1024;
let origin: Origin;
let lean: Cuttle;
let node: Cuttle;
const logOf = accessLogs('cuttle-lean-');

before(async () => {
  origin = await startOrigin((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const big = req.url?.startsWith('/big');
      res.writeHead(200, {
        'Cache-Control': req.url?.startsWith('/nostore') ? 'no-store' : 'max-age=600',
        'Content-Type': 'text/plain',
        ETag: '"v1"',
        'Last-Modified': 'Thu, 01 Jan 2026 00:00:00 GMT',
      });
      res.end(big ? Buffer.alloc(BIG, 'b') : `${req.method} ${req.url} ${Buffer.concat(chunks)}`);
    });
  });
  const start = (frontEnd: string) =>
    startCuttle({
      workers: 1,
      args: ['--origin', origin.url, '--front-end', frontEnd, '--access-log', logOf(frontEnd)],
    });
  [lean, node] = await Promise.all([start('lean'), start('node')]);
});
after(async () => {
  await Promise.all([lean.stop(), node.stop()]);
  await origin.close();
});

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: site.test\r\n${extra}\r\n`;
const stored = (path: string) => storedIn([lean, node], path);
/** Status lines and bodies of a raw exchange, in order (Date and Age vary between the two). */
const shape = (text: string) => text.replace(/^(Date|Age): .*\r\n/gm, '').replace(/ttl=\d+/g, 'ttl=N');
const leanCounts = async () => ({
  hit: await leanCount(lean, 'hit'),
  handover: await leanCount(lean, 'handover'),
});

describe('the lean front end', () => {
  it('answers a hit itself and hands a miss to node:http', async () => {
    await stored('/counted');
    const before = await leanCounts();
    const hit = await rawExchange(lean.port, get('/counted', 'Connection: close\r\n'));
    assert.match(hit.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*X-Cache: HIT/);
    const miss = await rawExchange(lean.port, get('/nostore-counted', 'Connection: close\r\n'));
    assert.match(miss.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*X-Cache: MISS[\s\S]*GET \/nostore-counted/);
    const now = await leanCounts();
    assert.ok(now.hit >= before.hit + 1, `hits ${before.hit} → ${now.hit}`);
    assert.ok(now.handover >= before.handover + 1, `handovers ${before.handover} → ${now.handover}`);
  });

  it("sends a hit's head and body exactly as node:http does, apart from Date and Age", async () => {
    await stored('/same');
    const [a, b] = await Promise.all(
      [lean, node].map((c) => rawExchange(c.port, get('/same', 'Connection: close\r\n'))),
    );
    assert.match(a.text, /X-Cache: HIT/);
    assert.equal(shape(a.text), shape(b.text));
    assert.equal(a.closed, true);
    const [k1, k2] = await Promise.all([lean, node].map((c) => rawExchange(c.port, get('/same'), 300)));
    assert.equal(shape(k1.text), shape(k2.text));
    assert.match(k1.text, /Connection: keep-alive\r\nKeep-Alive: timeout=\d+/);
  });

  it('answers pipelined hits, misses and a POST in order, the rest of the connection on node:http', async () => {
    await stored('/p1');
    const post = 'POST /posted HTTP/1.1\r\nHost: site.test\r\nContent-Length: 5\r\n\r\nhello';
    const wire = `${get('/p1')}${get('/nostore-p2')}${get('/p1')}${post}${get('/p1', 'Connection: close\r\n')}`;
    const [a, b] = await Promise.all([lean, node].map((c) => rawExchange(c.port, wire)));
    const order = (t: string) => [...t.matchAll(/X-Cache: (HIT|MISS)/g)].map((m) => m[1]);
    assert.deepEqual(order(a.text), ['HIT', 'MISS', 'HIT', 'MISS', 'HIT']);
    assert.deepEqual(order(b.text), order(a.text));
    assert.match(a.text, /GET \/nostore-p2[\s\S]*POST \/posted hello/);
    assert.equal(a.closed, true);
  });

  it('hands over a head that arrives in two reads, and answers it', async () => {
    await stored('/split');
    const sock = connect(lean.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    const closed = new Promise((r) => sock.on('close', r));
    sock.write('GET /split HTTP/1.1\r\nHo');
    await sleep(100);
    sock.write('st: site.test\r\nConnection: close\r\n\r\n');
    await closed;
    const text = Buffer.concat(chunks).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 OK[\s\S]*X-Cache: HIT[\s\S]*GET \/split $/);
  });

  it('keeps an HTTP/1.0 connection only when the client asked to', async () => {
    await stored('/old');
    const plain = await rawExchange(lean.port, 'GET /old HTTP/1.0\r\nHost: site.test\r\n\r\n');
    assert.match(plain.text, /X-Cache: HIT[\s\S]*Connection: close/);
    assert.equal(plain.closed, true);
    const kept = await rawExchange(
      lean.port,
      'GET /old HTTP/1.0\r\nHost: site.test\r\nConnection: keep-alive\r\n\r\n',
      300,
    );
    assert.match(kept.text, /X-Cache: HIT[\s\S]*Connection: keep-alive/);
    assert.equal(kept.closed, false);
  });

  it('answers HEAD, a matching conditional (304) and a range (206) from the store as node:http does', async () => {
    await stored('/cond');
    const asks = [
      'HEAD /cond HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n',
      get('/cond', 'If-None-Match: "v1"\r\nConnection: close\r\n'),
      get('/cond', 'Range: bytes=0-3\r\nConnection: close\r\n'),
    ];
    for (const ask of asks) {
      const [a, b] = await Promise.all([lean, node].map((c) => rawExchange(c.port, ask)));
      assert.match(a.text, /X-Cache: HIT/);
      assert.equal(shape(a.text), shape(b.text), ask);
    }
    const [head, cond, range] = await Promise.all(asks.map((ask) => rawExchange(lean.port, ask)));
    assert.match(head.text, /^HTTP\/1\.1 200 [\s\S]*Content-Length: 10\r\n[\s\S]*\r\n\r\n$/);
    assert.match(cond.text, /^HTTP\/1\.1 304 /);
    assert.match(range.text, /^HTTP\/1\.1 206 [\s\S]*Content-Range: bytes 0-3\/10[\s\S]*\r\n\r\nGET $/);
  });

  it('streams a large hit whole, and logs it as node:http does', async () => {
    await stored('/big');
    for (const c of [lean, node]) {
      const r = await viaProxy(c.port, '/big', { headers: { Host: 'site.test' } });
      assert.match(String(r.headers['x-cache']), /^HIT/);
      assert.equal(r.body.length, BIG);
      assert.ok(r.body.every((x) => x === 98));
    }
    await sleep(1500);
    const lines = (frontEnd: string) =>
      readFileSync(logOf(frontEnd), 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l.includes('/big ') && l.includes('_HIT/'))
        // time, elapsed and client port aside, the fields must agree
        .map((l) => l.split(/\s+/).slice(2).join(' '));
    assert.deepEqual(lines('lean'), lines('node'));
    assert.match(lines('lean').at(-1) ?? '', /TCP_HIT\/200 \d+ GET http:\/\/127\.0\.0\.1:\d+\/big /);
  });

  it('hands the bytes after a hit to node:http when they do not parse: the hit, then 400, then close', async () => {
    await stored('/before-garbage');
    const r = await rawExchange(lean.port, `${get('/before-garbage')}NOT HTTP AT ALL\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 200 OK[\s\S]*X-Cache: HIT[\s\S]*HTTP\/1\.1 400 /);
    assert.equal(r.closed, true);
  });

  it('refuses bare LF line ends after a hit as node:http does, and answers nothing after them', async () => {
    await stored('/before-lf');
    const r = await rawExchange(lean.port, `${get('/before-lf')}GET /after-lf HTTP/1.1\nHost: site.test\n\n`);
    assert.match(r.text, /^HTTP\/1\.1 200 OK[\s\S]*X-Cache: HIT[\s\S]*HTTP\/1\.1 400 /);
    assert.doesNotMatch(r.text, /after-lf/);
    assert.equal(r.closed, true);
  });

  it('keeps serving after a client leaves in the middle of a large hit', async () => {
    await stored('/big-abort');
    const sock = connect(lean.port, '127.0.0.1');
    sock.setNoDelay(true);
    // A small receive window and no reading: the hit stalls on back-pressure, then the client is gone.
    sock.pause();
    sock.write(get('/big-abort'));
    await sleep(200);
    sock.destroy();
    await sleep(300);
    const r = await viaProxy(lean.port, '/big-abort', { headers: { Host: 'site.test' } });
    assert.equal(r.body.length, BIG);
  });
});
