/**
 * A forward-proxy fleet the squid.conf way: three members, each listing all three as CARP parents
 * (itself included, which it recognises by its http_port), plus members whose parents are all dead.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { carpOrder, carpTable } from '../../src/fleet/carp.js';
import { type Cuttle, type Origin, sleep, startCuttle, viaProxy } from '../helpers/cuttle.js';
import { cacheableOrigin, fetchedBy, freePorts, pooled, serverList, startFleet } from '../helpers/fleet.js';

const dir = mkdtempSync(join(tmpdir(), 'cuttle-squid-fleet-'));
const NAMES = ['m1', 'm2', 'm3'];
let origin: Origin;
let ports: number[];
let members: Cuttle[];
const logOf = (i: number) => join(dir, `access-${i}.log`);

function squidConf(name: string, lines: string[]): string {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const paths = Array.from({ length: 300 }, (_, i) => `/u/${i}`);
const url = (path: string) => `${origin.url}${path}`;
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];

before(async () => {
  origin = await cacheableOrigin();
  ports = await freePorts(3);
  members = await startFleet(ports, (p, i) => ({
    args: [
      '--port',
      String(p),
      '--squid-conf',
      squidConf(NAMES[i], [
        `http_port 127.0.0.1:${p}`,
        'http_access allow all',
        ...ports.map((q, j) => `cache_peer 127.0.0.1 parent ${q} 0 carp no-query name=${NAMES[j]}`),
        `access_log stdio:${logOf(i)} squid`,
      ]),
    ],
  }));
});
after(async () => {
  await Promise.all(members.map((m) => m.stop()));
  await origin.close();
});

describe('a squid.conf fleet of three (cache_peer … parent … carp)', () => {
  it('300 URLs through random members: each reaches the origin once, from its CARP owner; the repeats are hits', async () => {
    await pooled(paths, 6, async (path) => {
      const r = await viaProxy(pick(members).port, url(path));
      assert.equal(r.status, 200);
    });
    const table = carpTable(NAMES.map((name) => ({ name, weight: 1 })));
    for (const path of paths) {
      const seen = origin.seen.filter((s) => s.url === path);
      assert.equal(seen.length, 1, `${path} reached the origin once`);
      // Squid's CARP key is the absolute URL, which is also cuttle's cache key here.
      assert.equal(fetchedBy(seen[0].headers.via), NAMES[carpOrder(table, url(path))[0]], `${path}'s owner`);
    }
    const before = origin.seen.length;
    await pooled(paths, 6, async (path) => {
      const r = await viaProxy(pick(members).port, url(path));
      // An entry member keeps a copy of its parent's answer (as Squid does without proxy-only), whose
      // stored Cache-Status is the owner's at the time: one member or the other is a hit.
      assert.match(String(r.headers['cache-status']), /(^|, )cuttle; hit/, path);
    });
    assert.equal(origin.seen.length, before);
  });

  it("logs Squid's hierarchy codes: CARP/<peer> at the entry member, HIER_DIRECT/<origin> at the owner", async () => {
    await sleep(300);
    const lines = members.map((_, i) => readFileSync(logOf(i), 'utf8'));
    const all = lines.join('');
    assert.match(
      all,
      / TCP_MISS\/200 \d+ GET http:\/\/127\.0\.0\.1:\d+\/u\/\d+ - CARP\/127\.0\.0\.1 text\/plain\n/,
    );
    assert.match(
      all,
      / TCP_MISS\/200 \d+ GET http:\/\/127\.0\.0\.1:\d+\/u\/\d+ - HIER_DIRECT\/127\.0\.0\.1 /,
    );
    assert.match(all, / TCP_(MEM_)?HIT\/200 \d+ GET \S+ - HIER_NONE\/- /);
  });

  it('shows the peers in the cache manager server_list and in /metrics', async () => {
    const list = await serverList(members[0].port);
    assert.match(list, /\nSelf {7}: m1\nHost {7}: 127\.0\.0\.1\/\d+\/0\n/);
    assert.match(
      list,
      new RegExp(
        `\\nParent {5}: m2\\nHost {7}: 127\\.0\\.0\\.1/${ports[1]}/0\\nFlags {6}: carp no-query connect-fail-limit=10\\nStatus {5}: Up\\nFETCHES {4}: [1-9]\\d*\\nCONNECT FAILURES : 0\\n`,
      ),
    );
    const m = (
      await viaProxy(members[0].port, `http://127.0.0.1:${members[0].port}/cuttle-internal/metrics`)
    ).body.toString();
    assert.match(m, /\ncuttle_peer_requests_total\{peer="m2"\} [1-9]\d*\n/);
    assert.match(m, /\ncuttle_peer_up\{peer="m3"\} 1\n/);
    assert.match(m, /\n# TYPE cuttle_peer_connect_failures_total counter\n/);
  });
});

describe('every parent down', () => {
  let dead: number[];
  let strict: Cuttle;
  let lenient: Cuttle;
  before(async () => {
    dead = await freePorts(2);
    const peers = dead.map(
      (q, j) => `cache_peer 127.0.0.1 parent ${q} 0 carp name=dead${j} connect-fail-limit=2`,
    );
    [strict, lenient] = await Promise.all(
      ['never_direct allow all', 'prefer_direct off'].map((rule, i) =>
        startCuttle({
          workers: 1,
          args: ['--squid-conf', squidConf(`down${i}`, ['http_access allow all', ...peers, rule])],
        }),
      ),
    );
  });
  after(async () => {
    await Promise.all([strict.stop(), lenient.stop()]);
  });

  it('never_direct: 503 ERR_CANNOT_FORWARD at once, and the parents are marked down', async () => {
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const r = await viaProxy(strict.port, url(`/nd/${i}`));
      assert.equal(r.status, 503);
      assert.equal(r.headers['x-squid-error'], 'ERR_CANNOT_FORWARD');
      assert.match(r.body.toString(), /ERR_CANNOT_FORWARD: .*never_direct/);
      assert.ok(performance.now() - t < 1000, 'refused connections fail fast');
    }
    const list = await serverList(strict.port);
    assert.equal((list.match(/Status {5}: Down/g) ?? []).length, 2, list);
  });

  it('without never_direct: the request goes direct', async () => {
    const r = await viaProxy(lenient.port, url('/direct'));
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'body of /direct');
  });
});
