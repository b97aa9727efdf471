/**
 * A reverse-mode fleet of three members on loopback, started the flag way (`--peer URL` for each member,
 * itself included): routing by cache key with CARP, one origin fetch per URL across the fleet, hits
 * through any member, and a member killed with SIGKILL under load, then restarted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { carpOrder, carpTable } from '../../src/fleet/carp.js';
import { type Cuttle, type Origin, sleep, startCuttle, viaProxy } from '../helpers/cuttle.js';
import {
  cacheableOrigin,
  fetchedBy,
  freePorts,
  peerStatus,
  pooled,
  serverList,
  startFleet,
} from '../helpers/fleet.js';

const CONNECT_TIMEOUT_MS = 2000;
const SITE = 'site.test';
let origin: Origin;
let ports: number[];
let members: Cuttle[];
const names = () => ports.map((p) => `127.0.0.1:${p}`);
const memberArgs = (p: number) => ({
  args: [
    '--port',
    String(p),
    '--origin',
    origin.url,
    ...ports.flatMap((q) => ['--peer', `http://127.0.0.1:${q}`]),
  ],
  config: { timeouts: { connect: `${CONNECT_TIMEOUT_MS}ms` } },
});
const get = (port: number, path: string) =>
  viaProxy(port, path, { headers: { Host: SITE }, timeoutMs: 10_000 });
const paths = Array.from({ length: 300 }, (_, i) => `/obj/${i}`);
/** The member each path's origin fetch came from, after the first pass. */
const owner = new Map<string, string>();
const fetches = (path: string) => origin.seen.filter((s) => s.url === path).length;
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];

before(async () => {
  origin = await cacheableOrigin();
  ports = await freePorts(3);
  members = await startFleet(ports, memberArgs);
});
after(async () => {
  await Promise.all(members.map((m) => m.stop('SIGKILL')));
  await origin.close();
});

describe('a reverse-mode fleet of three (--peer)', () => {
  it('300 URLs through random members: each reaches the origin once, from the CARP owner of its cache key', async () => {
    await pooled(paths, 6, async (path) => {
      const r = await get(pick(members).port, path);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `body of ${path}`);
    });
    const table = carpTable(names().map((name) => ({ name, weight: 1 })));
    const share = new Map<string, number>();
    for (const path of paths) {
      assert.equal(fetches(path), 1, `${path} reached the origin once`);
      const by = fetchedBy(origin.seen.find((s) => s.url === path)?.headers.via);
      owner.set(path, by);
      share.set(by, (share.get(by) ?? 0) + 1);
      assert.equal(
        by,
        names()[carpOrder(table, `http://${SITE}${path}`)[0]],
        `${path}: fetched by its owner`,
      );
    }
    assert.equal(share.size, 3, `every member owns some URLs: ${[...share]}`);
  });

  it('the repeats are hits whichever member the client uses; a non-owner says fwd and the status', async () => {
    const before = origin.seen.length;
    await pooled(paths, 6, async (path) => {
      const m = pick(members);
      const r = await get(m.port, path);
      assert.equal(r.status, 200);
      const cs = String(r.headers['cache-status']);
      assert.match(cs, /^cuttle; hit/, `${path}: the owner's member comes first and is a hit (${cs})`);
      if (owner.get(path) !== `127.0.0.1:${m.port}`)
        assert.match(
          cs,
          /, cuttle; fwd=uri-miss; fwd-status=200$/,
          `${path}: the entry member's own (${cs})`,
        );
      else assert.doesNotMatch(cs, /,/);
    });
    assert.equal(origin.seen.length, before, 'no origin fetch for a repeat');
  });

  it('kill -9 of one member under load: its URLs move, the others stay hits, nobody waits past the connect timeout; the restarted member is probed back', async () => {
    const victim = members[1];
    const victimName = names()[1];
    const survivors = [members[0], members[2]];
    const results: Array<{ path: string; status: number; ms: number; cs: string; after: boolean }> = [];
    let killed = false;
    const load = (async () => {
      const until = Date.now() + 2500;
      await pooled(Array.from({ length: 4 }), 4, async () => {
        while (Date.now() < until) {
          const path = pick(paths);
          const t = performance.now();
          const r = await get(pick(survivors).port, path);
          results.push({
            path,
            status: r.status,
            ms: performance.now() - t,
            cs: String(r.headers['cache-status']),
            after: killed,
          });
        }
      });
    })();
    await sleep(400);
    for (const pid of [victim.proc.pid as number, ...victim.workerPids()]) process.kill(pid, 'SIGKILL');
    killed = true;
    await victim.exited;
    await load;

    assert.ok(results.filter((r) => r.after).length > 50, `load after the kill: ${results.length} requests`);
    for (const r of results) assert.equal(r.status, 200, `${r.path}: ${r.status}`);
    const slowest = Math.max(...results.map((r) => r.ms));
    assert.ok(slowest < CONNECT_TIMEOUT_MS, `slowest answer ${slowest.toFixed(0)} ms`);
    for (const r of results)
      if (owner.get(r.path) !== victimName) assert.match(r.cs, /^cuttle; hit/, `${r.path} stayed a hit`);
    // The dead member's URLs were fetched again, once each, by the next member in CARP order.
    for (const path of paths)
      assert.ok(
        fetches(path) <= 2,
        `${path}: ${fetches(path)} origin fetches ${JSON.stringify(origin.seen.filter((s) => s.url === path).map((s) => [s.headers.via, s.headers['cache-control']]))} ${JSON.stringify(results.filter((r) => r.path === path))}`,
      );
    for (const s of survivors) {
      const list = await serverList(s.port);
      assert.equal(peerStatus(list, victimName), 'Down', list);
    }

    // Restarted with its cache: the survivors' probe (a TCP connect every 3 s) brings it back.
    members[1] = await startCuttle({ workers: 1, cacheDir: victim.cacheDir, ...memberArgs(ports[1]) });
    const deadline = Date.now() + 15_000;
    let up: Array<string | undefined> = [];
    while (Date.now() < deadline) {
      up = await Promise.all(survivors.map(async (s) => peerStatus(await serverList(s.port), victimName)));
      if (up.every((x) => x === 'Up')) break;
      await sleep(200);
    }
    assert.deepEqual(up, ['Up', 'Up'], 'the probe brought it back');
    // Asked through the member that neither owns the URL nor took it over (that one keeps its copy until
    // it expires, as a Squid would serve its own hit).
    const table = carpTable(names().map((name) => ({ name, weight: 1 })));
    const path = paths.find((p) => {
      const order = carpOrder(table, `http://${SITE}${p}`);
      return order[0] === 1 && order[1] === 2;
    }) as string;
    const r = await get(members[0].port, path);
    assert.equal(r.status, 200);
    assert.match(
      String(r.headers.via),
      new RegExp(`1\\.1 ${victimName.replace(/\./g, '\\.')} `),
      'served by its owner again',
    );
    assert.match(String(r.headers['cache-status']), /^cuttle; hit/, 'from the cache it kept');
  });
});
