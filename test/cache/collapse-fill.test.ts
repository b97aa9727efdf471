/**
 * Collapsed waiters stream the fill as it commits, in every worker (cache/collapse.ts): late joiners get
 * the whole body, a first byte arrives before the origin has finished, a fill cut mid-body is never passed
 * off as whole, and a leader killed with SIGKILL is replaced within two seconds.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type IncomingMessage, sleep, startCuttle } from '../helpers/cuttle.js';
import { pidOfLocalPort } from '../helpers/sockets.js';
import { routedOrigin } from './harness.js';

const ACCESS_LOG = join(mkdtempSync(join(tmpdir(), 'cuttle-fill-')), 'access.log');
const SIZE = 8 * 1024 * 1024;
const BODY = randomBytes(SIZE);
const SHA1 = createHash('sha1').update(BODY).digest('hex');

const o = routedOrigin('/f');
const { route, hits } = o;
let c: Cuttle;

interface Drip {
  /** When the origin wrote its last byte (0 while it has not). */
  doneAt: number;
  url: string;
}

/** The 8 MiB body in `steps` pieces every `everyMs`; `cutAfter` pieces then a reset; `firstMs` before any. */
function drip(
  steps: number,
  everyMs: number,
  opts: { cutAfter?: (n: number) => number | null; firstMs?: number } = {},
): Drip {
  const d: Drip = { doneAt: 0, url: '' };
  d.url = route((_q, res, n) => {
    res.writeHead(200, { 'Content-Length': String(SIZE), 'Cache-Control': 'max-age=60' });
    const piece = Math.ceil(SIZE / steps);
    const cut = opts.cutAfter?.(n) ?? null;
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    const step = () => {
      if (cut !== null && i === cut) {
        res.destroy();
        return;
      }
      res.write(BODY.subarray(i * piece, (i + 1) * piece));
      i++;
      if (i * piece >= SIZE) {
        d.doneAt = Date.now();
        res.end();
        return;
      }
      timer = setTimeout(step, everyMs);
    };
    timer = setTimeout(step, n === 1 ? (opts.firstMs ?? 0) : 0);
    res.on('close', () => clearTimeout(timer));
  });
  return d;
}

interface Got {
  status: number;
  sha1: string;
  length: number;
  firstByteAt: number;
  error: string | null;
  cacheStatus: string;
}

/**
 * A GET through the proxy that records when its first body byte came, and never rejects; `onFirst` sees
 * the response then (a test that wants a slow reader pauses it there).
 */
function fetchRecorded(
  url: string,
  timeoutMs = 20_000,
  onFirst: (res: IncomingMessage) => void = () => {},
): Promise<Got> {
  return new Promise((resolve) => {
    const got: Got = { status: 0, sha1: '', length: 0, firstByteAt: 0, error: null, cacheStatus: '' };
    const hash = createHash('sha1');
    const req = request({ host: '127.0.0.1', port: c.port, path: url, agent: false }, (res) => {
      got.status = res.statusCode ?? 0;
      got.cacheStatus = String(res.headers['cache-status']);
      res.on('data', (b: Buffer) => {
        if (got.firstByteAt === 0) {
          got.firstByteAt = Date.now();
          onFirst(res);
        }
        got.length += b.length;
        hash.update(b);
      });
      res.on('end', () => {
        if (!res.complete) got.error ??= 'ended short';
        got.sha1 = hash.digest('hex');
        resolve(got);
      });
      res.on('error', (e) => {
        got.error = e.message;
        resolve(got);
      });
    });
    req.on('error', (e) => {
      got.error = e.message;
      resolve(got);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

before(async () => {
  c = await startCuttle({ workers: 2, args: ['--access-log', ACCESS_LOG] });
});
after(async () => {
  await c.stop();
});

describe('collapsed waiters stream the fill', () => {
  it('gives late joiners in both workers the whole body, their first byte before the origin finished', async () => {
    const d = drip(128, 25);
    const leader = fetchRecorded(d.url);
    await sleep(1_000);
    const late = await Promise.all(Array.from({ length: 4 }, () => fetchRecorded(d.url)));
    const first = await leader;
    for (const g of [first, ...late]) {
      assert.equal(g.error, null);
      assert.equal(g.status, 200);
      assert.equal(g.length, SIZE);
      assert.equal(g.sha1, SHA1);
    }
    assert.equal(hits(d.url), 1);
    assert.ok(d.doneAt > 0);
    // Four connections in a row go to both workers (round-robin): waiters in the leader's worker and the
    // other one all had bytes while the origin was still sending.
    for (const g of late) {
      assert.ok(g.firstByteAt < d.doneAt, `first byte ${g.firstByteAt - d.doneAt} ms after the origin's end`);
      assert.match(g.cacheStatus, /collapsed/);
    }
    // Regression: a waiter's response ended only at the commit, after a client holding every byte had
    // closed, and was logged TCP_CF_MISS_ABORTED.
    await sleep(500);
    const lines = readFileSync(ACCESS_LOG, 'utf8')
      .split('\n')
      .filter((l) => l.includes(d.url));
    assert.equal(lines.length, 5);
    for (const l of lines) assert.doesNotMatch(l, /_ABORTED/);
  });

  it('lets a slow leader hold back only its own connection: a waiter gets the whole body while it stalls', async () => {
    const d = drip(32, 20);
    // The leader reads its first bytes, then stops reading until the waiter is done.
    let release: () => void = () => {};
    const stalled = new Promise<void>((r) => {
      release = r;
    });
    const leader = fetchRecorded(d.url, 30_000, (res) => {
      res.pause();
      void stalled.then(() => res.resume());
    });
    await sleep(200);
    const waiter = await fetchRecorded(d.url, 10_000);
    assert.equal(waiter.error, null);
    assert.equal(waiter.sha1, SHA1);
    assert.ok(d.doneAt > 0, 'the origin finished while the leader was stalled');
    release();
    const first = await leader;
    assert.equal(first.error, null);
    assert.equal(first.length, SIZE);
    assert.equal(first.sha1, SHA1);
    assert.equal(hits(d.url), 1);
  });

  it('never ends a waiter cleanly when the origin resets mid-body, and fetches again afterwards', async () => {
    const d = drip(128, 20, { cutAfter: (n) => (n === 1 ? 40 : null) });
    const leader = fetchRecorded(d.url);
    await sleep(300);
    const waiters = Array.from({ length: 4 }, () => fetchRecorded(d.url));
    await sleep(200);
    const later = Array.from({ length: 2 }, () => fetchRecorded(d.url));
    const all = await Promise.all([leader, ...waiters, ...later]);
    for (const g of all) {
      // Cut (an error, a short body) or told of the failure before any byte: never a clean short 200.
      if (g.status === 200) assert.notEqual(g.error, null, `a 200 of ${g.length} bytes ended cleanly`);
      else assert.ok(g.status >= 500 || g.status === 0, `status ${g.status}`);
    }
    assert.equal(hits(d.url), 1);
    const again = await fetchRecorded(d.url);
    assert.equal(again.error, null);
    assert.equal(again.sha1, SHA1);
    assert.equal(hits(d.url), 2);
  });

  it('replaces a leader whose worker was killed with SIGKILL within 2 s; the waiters do not hang', async () => {
    let leaderPort = 0;
    let secondAt = 0;
    const d = drip(64, 10, { firstMs: 1_500 });
    const inner = o.handler(d.url);
    o.reroute(d.url, (q, res, n) => {
      if (n === 1) leaderPort = q.socket.remotePort ?? 0;
      if (n === 2) secondAt = Date.now();
      inner(q, res, n);
    });
    const leader = fetchRecorded(d.url);
    await sleep(300);
    const waiters = Array.from({ length: 4 }, () => fetchRecorded(d.url));
    await sleep(300);
    const pid = pidOfLocalPort(c.workerPids(), leaderPort);
    assert.ok(pid !== null, 'the leading worker holds the origin connection');
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const got = await Promise.all(waiters);
    await leader;
    assert.ok(secondAt > 0, 'a new fetch started');
    assert.ok(secondAt - killedAt < 2_000, `the new fetch started ${secondAt - killedAt} ms after the kill`);
    // Waiters in the killed worker lost their connection; the others got the whole object.
    const whole = got.filter((g) => g.error === null);
    assert.ok(whole.length >= 1, JSON.stringify(got.map((g) => g.error)));
    for (const g of whole) assert.equal(g.sha1, SHA1);
    assert.equal(hits(d.url), 2);
  });
});
