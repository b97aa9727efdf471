import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Cuttle,
  type Origin,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

/** Prometheus text → series ("name{labels}") → value, and the declared type of each metric family. */
function parse(text: string): { series: Map<string, number>; types: Map<string, string> } {
  const series = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) types.set(t[1], t[2]);
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    series.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return { series, types };
}

/** The sum of a metric's series whose labels include every `label="value"` given. */
function total(text: string, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const [k, v] of parse(text).series) {
    const base = k.split('{')[0];
    if (base === name && labels.every((l) => k.includes(l))) sum += v;
  }
  return sum;
}

const scrape = async (c: Cuttle, path = '/cuttle-internal/metrics') => {
  const r = await viaProxy(c.port, path, { agent: false });
  assert.equal(r.status, 200, r.body.toString());
  return r.body.toString();
};

/** The series of counters and histograms (the ones that must never go down), with their values. */
function monotonic(text: string): Map<string, number> {
  const { series, types } = parse(text);
  const out = new Map<string, number>();
  for (const [k, v] of series) {
    const family = k.split('{')[0].replace(/_(bucket|sum|count)$/, '');
    const type = types.get(family) ?? types.get(k.split('{')[0]);
    if ((type === 'counter' || type === 'histogram') && k.startsWith('cuttle_')) out.set(k, v);
  }
  return out;
}

const BODY = 'x'.repeat(2000);
let origin: Origin;
before(async () => {
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=600', 'Content-Type': 'text/plain' });
    res.end(req.url === '/small' ? 'small' : BODY);
  });
});
after(() => origin.close());

describe('/metrics over two workers', () => {
  let c: Cuttle;
  before(async () => {
    c = await startCuttle({ workers: 2, args: ['--metrics-port', '0'] });
  });
  after(() => c.stop());

  it('sums requests, hits, misses, bytes and durations over both workers', async () => {
    const url = `${origin.url}/summed`;
    await viaProxy(c.port, url, { agent: false });
    await waitStored(c.cacheDir, url);
    // A new connection each: the primary deals them to the two workers in turn, so each worker holds
    // about half of the hits and only the sum over both can give 20.
    for (let i = 0; i < 20; i++) assert.equal((await viaProxy(c.port, url, { agent: false })).status, 200);
    const text = await scrape(c);
    assert.equal(total(text, 'cuttle_cache_misses_total'), 1);
    assert.equal(total(text, 'cuttle_cache_hits_total'), 20);
    assert.equal(
      total(text, 'cuttle_requests_total', 'result="TCP_MISS"', 'method="GET"', 'status_class="2xx"') >= 1,
      true,
    );
    const hitTags =
      total(text, 'cuttle_requests_total', 'result="TCP_MEM_HIT"') +
      total(text, 'cuttle_requests_total', 'result="TCP_HIT"');
    assert.equal(hitTags, 20, text);
    assert.equal(total(text, 'cuttle_request_duration_seconds_count', 'kind="hit"'), 20);
    assert.equal(total(text, 'cuttle_request_duration_seconds_count', 'kind="miss"'), 1);
    // Every hit sent the whole body plus a header section.
    assert.ok(total(text, 'cuttle_sent_bytes_total', 'source="cache"') > 20 * BODY.length);
    const upstreamBytes = total(text, 'cuttle_sent_bytes_total', 'source="upstream"');
    assert.ok(upstreamBytes > BODY.length && upstreamBytes < 2 * BODY.length, `${upstreamBytes}`);
    assert.equal(total(text, 'cuttle_upstream_connect_seconds_count') >= 1, true);
    assert.equal(total(text, 'cuttle_upstream_response_header_seconds_count'), 1);
    assert.equal(total(text, 'cuttle_workers_alive'), 2);
    assert.equal(total(text, 'cuttle_cache_bound_bytes'), 1024 ** 3);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    assert.match(text, /^# TYPE nodejs_gc_duration_seconds histogram/m);
    // The buckets run from 100 µs to 10 s.
    assert.match(text, /cuttle_request_duration_seconds_bucket\{le="0.0001",kind="hit"\}/);
    assert.match(text, /cuttle_request_duration_seconds_bucket\{le="10",kind="hit"\}/);
  });

  it('counts upstream errors by Squid error name, and logs the failing upstream once', async () => {
    const dead = await startOrigin(() => {});
    const deadUrl = dead.url;
    await dead.close();
    for (let i = 0; i < 2; i++) {
      const r = await viaProxy(c.port, `${deadUrl}/gone`, { agent: false });
      assert.equal(r.status, 502);
    }
    const text = await scrape(c);
    assert.equal(total(text, 'cuttle_upstream_errors_total', 'error="ERR_CONNECT_FAIL"'), 2);
    assert.equal(total(text, 'cuttle_requests_total', 'status_class="5xx"'), 2);
    const failing = c.logs().filter((l) => l.msg === 'upstream marked failing: cannot connect');
    // One line per worker that saw it fail (each worker dials on its own), never one per request.
    assert.ok(failing.length >= 1 && failing.length <= 2, JSON.stringify(failing));
    assert.equal(
      c.logs().filter((l) => l.error === 'ERR_CONNECT_FAIL 111').length,
      0,
      'no per-request info line',
    );
  });

  it('answers plain /metrics for the proxy itself, and on --metrics-port', async () => {
    const plain = await scrape(c, '/metrics');
    assert.ok(total(plain, 'cuttle_cache_hits_total') >= 20);
    const port = Number(c.logs().find((l) => l.msg === 'metrics listening')?.metricsPort);
    assert.ok(port > 0);
    const text = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          b += d;
        });
        res.on('end', () => resolve(b));
      })
        .on('error', reject)
        .end();
    });
    assert.ok(total(text, 'cuttle_cache_hits_total') >= 20);
    assert.match(text, /^cuttle_workers_alive 2$/m);
  });

  it('answers 404 for an unknown /cuttle-internal/ page', async () => {
    assert.equal((await viaProxy(c.port, '/cuttle-internal/nonesuch', { agent: false })).status, 404);
  });
});

describe("the pages under a squid.conf: Squid's manager ACL decides", () => {
  it('refuses a client the manager ACL does not name, serves one it does', async () => {
    const stock = fileURLToPath(new URL('../../../test/fixtures/squid/stock.conf', import.meta.url));
    const c = await startCuttle({ workers: 1, args: ['--squid-conf', stock, '--host', '127.0.0.1'] });
    try {
      for (const path of [
        '/cuttle-internal/metrics',
        '/cuttle-internal/stats.json',
        '/cuttle-internal/dashboard',
      ]) {
        // 127.0.0.2 is loopback but not Squid's `localhost` ACL (127.0.0.1/32).
        const r = await viaProxy(c.port, path, { agent: false, localAddress: '127.0.0.2' });
        assert.equal(r.status, 403, path);
        assert.equal((await viaProxy(c.port, path, { agent: false })).status, 200, path);
      }
    } finally {
      await c.stop();
    }
  });
});

describe('counters across worker restarts', () => {
  it('never go down when a worker is killed or the workers are reloaded', async () => {
    const c = await startCuttle({ workers: 2, config: { visibleHostname: 'before' } });
    try {
      const url = `${origin.url}/small`;
      await viaProxy(c.port, url, { agent: false });
      await waitStored(c.cacheDir, url);
      for (let i = 0; i < 10; i++) await viaProxy(c.port, url, { agent: false });
      const first = monotonic(await scrape(c));
      assert.ok((first.get('cuttle_cache_hits_total') ?? 0) >= 10);

      const [victim] = c.workerPids();
      process.kill(victim, 'SIGKILL');
      for (let i = 0; i < 100 && (c.workerPids().length < 2 || c.workerPids().includes(victim)); i++)
        await sleep(100);
      const died = c.logs().find((l) => l.msg === 'worker died' && l.workerPid === victim);
      assert.equal(died?.signal, 'SIGKILL');
      assert.ok(died && 'lastError' in died);
      const second = monotonic(await scrape(c));
      for (const [k, v] of first)
        assert.ok((second.get(k) ?? 0) >= v, `${k} went from ${v} to ${second.get(k)}`);
      assert.equal(second.get('cuttle_worker_restarts_total'), 1);

      for (let i = 0; i < 10; i++) await viaProxy(c.port, url, { agent: false });
      const before = monotonic(await scrape(c));
      // More traffic after the scrape: a graceful reload hands these counts over as the old workers exit.
      for (let i = 0; i < 5; i++) await viaProxy(c.port, url, { agent: false });
      writeFileSync(join(c.dir, 'cuttle.json'), JSON.stringify({ visibleHostname: 'after' }));
      c.proc.kill('SIGHUP');
      for (let i = 0; i < 100 && !c.logs().some((l) => l.msg === 'reload complete'); i++) await sleep(100);
      await sleep(1000);
      const reload = c.logs().find((l) => l.msg === 'reload: replacing workers one at a time');
      assert.deepEqual(reload?.changed, ['visibleHostname']);
      const text = await scrape(c);
      const third = monotonic(text);
      for (const [k, v] of before)
        assert.ok((third.get(k) ?? 0) >= v, `${k} went from ${v} to ${third.get(k)}`);
      assert.ok(
        (third.get('cuttle_cache_hits_total') ?? 0) >= (before.get('cuttle_cache_hits_total') ?? 0) + 5,
        'the counts made after the last scrape survive the reload',
      );
      assert.ok(total(text, 'cuttle_last_reload_timestamp_seconds') > Date.now() / 1000 - 60);
    } finally {
      await c.stop();
    }
  });
});

describe('metrics off', () => {
  it('answers 404 for the pages and keeps the cache manager', async () => {
    const c = await startCuttle({ workers: 1, args: ['--metrics', 'off'] });
    try {
      const r = await viaProxy(c.port, '/cuttle-internal/metrics', { agent: false });
      assert.equal(r.status, 404);
      assert.match(r.body.toString(), /metrics are off/);
      assert.equal((await viaProxy(c.port, '/squid-internal-mgr/info', { agent: false })).status, 200);
    } finally {
      await c.stop();
    }
  });
});

describe('--log-format', () => {
  it('pretty prints for a person, JSON stays the default on a pipe', async () => {
    const pretty = await startCuttle({ workers: 1, args: ['--log-format', 'pretty'] });
    try {
      for (let i = 0; i < 50 && !pretty.stderr.some((l) => l.includes('worker listening')); i++)
        await sleep(50);
      const line = pretty.stderr.find((l) => l.includes('worker listening')) ?? '';
      assert.ok(line, pretty.stderr.join('\n'));
      assert.throws(() => JSON.parse(line), 'not a JSON line');
      assert.match(line, /INFO/);
    } finally {
      await pretty.stop();
    }
    const json = await startCuttle({ workers: 1 });
    try {
      assert.ok(json.logs().some((l) => l.msg === 'worker listening'));
    } finally {
      await json.stop();
    }
  });
});
