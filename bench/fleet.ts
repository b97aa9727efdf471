/**
 * `npm run bench -- --fleet N`: N cuttle instances in reverse mode on 127.0.0.1, each started through the
 * real CLI with the same `--peer` list (itself included), in front of the bench's origin; beside them two
 * single cuttles: "single" with one member's cache size, "total" with the fleet's total. The working set
 * (objects of 64 KiB) is sized so that the fleet holds it (each member owns about 1/N of it, well under its
 * bound) and "single" does not (it holds about 1.5/N of it). "total" holds it too: a fleet that stores each
 * object once holds what one instance of its total size holds, so the issue's two conditions (the same
 * total size; the fleet holds the working set and the single does not) take two single instances.
 * Reported:
 *
 * - origin fetches per distinct URL (the origin counts requests per path; 1.00 is the goal) and the hit
 *   ratio of passes over the working set in random order, each request through a random member, for the
 *   fleet and for the single instance;
 * - the fleet's hit throughput: the load tool against every member at once, each connection going through
 *   the whole working set, so about (N-1)/N of the hits take the extra hop to the owner;
 * - the cost of that hop: p50 and p99 of a hit through the owner and through another member, one request
 *   at a time on a kept-alive connection, alternating.
 *
 * Every request carries the same Host (a balancer's clients all name the site), since reverse mode keys the
 * cache on it. The sweeper runs every 500 ms in every instance, so the single instance's bound holds during
 * the passes rather than after them.
 */
import { mkdirSync } from 'node:fs';
import { Agent, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { VERSION } from '../src/shared/version.js';
import { median } from '../src/stats/counters.js';
import { startCuttle, treeAnon, treeCpu, treeRss } from '../test/helpers/cuttle.js';
import { type Figures, load, probe, rightBody } from './load.js';
import type { Run } from './run.js';
import { freePort, type OriginPorts, type System } from './systems.js';

/** A measurement, with the fleet's own figures where it has them. */
export interface FleetRun extends Run {
  /** Requests answered without the origin, over the measured passes. */
  hitRatio?: number;
  /** Origin fetches over the working set's distinct URLs, fill and passes together. */
  originPerUrl?: number;
}

export interface FleetOptions {
  members: number;
  workers: number;
  origin: OriginPorts;
  connections: number;
  duration: number;
  rounds: number;
  tool: 'autocannon' | 'wrk';
  scratchDir: string;
  quick: boolean;
  log: (line: string) => void;
  /** Each instance as it starts, so the caller stops it whatever happens. */
  started: (sys: System) => void;
}

const SITE = 'fleet.bench.test';
const HOST = { host: SITE };
const OBJECT = '64k';
const OBJECT_BYTES = 64 * 1024;
/** What the sweeper counts for an entry of OBJECT: the body, its stored head, 512 bytes of overhead. */
const ENTRY_BYTES = OBJECT_BYTES + 1024;

/** A seeded generator (Numerical Recipes' LCG): the same member choices and orders on every run. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export function shuffled<T>(xs: readonly T[], rnd: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Cache sizes: each member's bound is 1.5/N of the working set, so its expected 1/N share (CARP's spread
 * is within a few percent at these counts) stays under the sweeper's 90 % low-water mark, and a single
 * instance with the same bound holds 1.5/N of the working set.
 */
export function fleetSizing(members: number, urls: number): { memberBytes: number; workingSetBytes: number } {
  const workingSetBytes = urls * ENTRY_BYTES;
  return { workingSetBytes, memberBytes: Math.ceil((1.5 * workingSetBytes) / members) };
}

/** Cache-Status members, in order (RFC 9211: the origin side first, the cache nearest the client last). */
export function cacheStatusMembers(h: IncomingHttpHeaders): string[] {
  const v = h['cache-status'];
  if (v === undefined) return [];
  return String(v)
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
}

/** A record with no figures yet, for measurements that are not a load tool's. */
const record0 = (system: string, scenario: string, round: number): FleetRun => ({
  system,
  scenario,
  round,
  tool: 'node:http',
  ...{ requestsPerSec: 0, mbPerSec: 0, p50: 0, p99: 0, p999: 0, errors: 0, timeouts: 0, non2xx: 0 },
  ...{ mismatches: 0, peakRssMb: 0, peakAnonMb: 0, cpuUsPerReq: 0 },
});

const isHit = (h: IncomingHttpHeaders) => cacheStatusMembers(h).some((m) => /;\s*hit\b/.test(m));

interface Instance extends System {
  cacheDir: string;
}

async function startInstance(
  name: string,
  port: number,
  o: FleetOptions,
  cacheBytes: number,
  peers: string[],
): Promise<Instance> {
  const c = await startCuttle({
    workers: o.workers,
    logLevel: 'warn',
    // startCuttle's own --port 0 comes first; the last --port wins, and a member must know its port up front.
    args: [
      '--origin',
      `http://127.0.0.1:${o.origin.http}`,
      '--port',
      String(port),
      '--cache-size',
      `${Math.ceil(cacheBytes / 1024)}k`,
      ...peers.flatMap((p) => ['--peer', p]),
    ],
    config: { sweepInterval: '500ms' },
  });
  const sys: Instance = {
    name,
    version: VERSION,
    port: c.port,
    forward: false,
    isHit,
    pid: c.proc.pid as number,
    cacheDir: c.cacheDir,
    stop: async () => {
      await c.stop();
    },
  };
  o.started(sys);
  return sys;
}

/** Requests every path once through the given members, `width` at a time; checks every answer. */
async function pass(
  members: readonly Instance[],
  paths: readonly string[],
  rnd: () => number,
  width = 8,
): Promise<{ hits: number; failures: string[] }> {
  let next = 0;
  let hits = 0;
  const failures: string[] = [];
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++];
      const m = members[Math.floor(rnd() * members.length)];
      const r = await probe(m.port, path, HOST);
      if (r.status !== 200 || !rightBody(r.body, OBJECT_BYTES))
        failures.push(`${m.name} ${path}: ${r.status}, ${r.body.length} bytes`);
      else if (isHit(r.headers)) hits++;
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return { hits, failures };
}

function scratchFor(dir: string, i: number): string {
  const d = join(dir, `fleet-${i}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const originCount = async (origin: OriginPorts, prefix: string) =>
  Number((await probe(origin.http, `/__count?prefix=${encodeURIComponent(prefix)}`)).body.toString());

/** Fill, let the sweeper run, then measured passes: origin fetches per URL and the hit ratio. */
async function hitRatio(
  system: string,
  members: readonly Instance[],
  prefix: string,
  urls: number,
  o: FleetOptions,
): Promise<FleetRun> {
  const rnd = seeded(members.length * 1000 + urls);
  const paths = Array.from({ length: urls }, (_, i) => `${prefix}${i}`);
  const fill = await pass(members, paths, rnd);
  await new Promise((r) => setTimeout(r, 1500)); // a sweep or two: the single instance's bound applies
  const before = await originCount(o.origin, prefix);
  const passes = o.quick ? 2 : 4;
  const failures = [...fill.failures];
  let hits = 0;
  const started = Date.now();
  for (let i = 0; i < passes; i++) {
    const r = await pass(members, shuffled(paths, rnd), rnd);
    hits += r.hits;
    failures.push(...r.failures);
  }
  const seconds = (Date.now() - started) / 1000;
  const after = await originCount(o.origin, prefix);
  const requests = passes * urls;
  const ratio = 1 - (after - before) / requests;
  return {
    ...record0(system, 'fleet-ratio', 1),
    requestsPerSec: requests / seconds,
    mbPerSec: (requests * OBJECT_BYTES) / seconds / 1e6,
    errors: failures.length,
    hitRatio: ratio,
    originPerUrl: after / urls,
    note:
      `${passes} passes over ${urls} URLs: ${after - before} origin fetches, ${hits} answers with a hit in Cache-Status` +
      (failures.length > 0 ? `; first failure: ${failures[0]}` : ''),
  };
}

/**
 * The load tool against every member at once over the working set (the same connections in all, split
 * between members); summed rates, the worst p99.
 */
async function hitThroughput(
  system: string,
  members: readonly Instance[],
  prefix: string,
  paths: readonly string[],
  o: FleetOptions,
  round: number,
  duration: number,
): Promise<FleetRun> {
  const perMember = Math.max(1, Math.round(o.connections / members.length));
  // The load tools check lengths, not hits: the origin says whether any request got past the fleet.
  const fetchedBefore = await originCount(o.origin, prefix);
  const cpuBefore = members.reduce((a, m) => a + treeCpu(m.pid), 0);
  let peak = 0;
  let peakAnon = 0;
  const sample = () => {
    peak = Math.max(
      peak,
      members.reduce((a, m) => a + treeRss(m.pid), 0),
    );
    peakAnon = Math.max(
      peakAnon,
      members.reduce((a, m) => a + treeAnon(m.pid), 0),
    );
  };
  const sampler = setInterval(sample, 200);
  const startedAt = Date.now();
  const figures = await Promise.all(
    members.map((m, i) =>
      load({
        port: m.port,
        target: paths[0],
        // Each member's connections start at another point of the working set.
        targets: [...paths.slice(Math.floor((i * paths.length) / members.length)), ...paths].slice(
          0,
          paths.length,
        ),
        headers: HOST,
        bytes: OBJECT_BYTES,
        connections: perMember,
        duration,
        tool: o.tool,
        scratchDir: scratchFor(o.scratchDir, i), // wrk's script, one per concurrent load
      }),
    ),
  ).finally(() => clearInterval(sampler));
  sample();
  const cpu = members.reduce((a, m) => a + treeCpu(m.pid), 0) - cpuBefore;
  const sum = (f: (x: Figures) => number) => figures.reduce((a, x) => a + f(x), 0);
  const requestsPerSec = sum((x) => x.requestsPerSec);
  const served = requestsPerSec * ((Date.now() - startedAt) / 1000);
  return {
    system,
    scenario: 'fleet-hit',
    round,
    tool: figures[0].tool,
    requestsPerSec,
    mbPerSec: sum((x) => x.mbPerSec),
    p50: median(figures.map((x) => x.p50)),
    p99: Math.max(...figures.map((x) => x.p99)),
    p999: Math.max(...figures.map((x) => x.p999)),
    errors: sum((x) => x.errors),
    timeouts: sum((x) => x.timeouts),
    non2xx: sum((x) => x.non2xx),
    mismatches: sum((x) => x.mismatches),
    peakRssMb: Math.round(peak / 1e6),
    peakAnonMb: Math.round(peakAnon / 1e6),
    cpuUsPerReq: served > 0 ? (cpu * 1e6) / served : 0,
    note: `${members.length} members × ${perMember} connections over ${paths.length} URLs, ${(await originCount(o.origin, prefix)) - fetchedBefore} origin fetches`,
  };
}

/**
 * The member that answers a path from its own cache: one Cache-Status member, a hit. A member that is not
 * the owner shows two (the owner's, then its own fwd=miss), unless it kept a copy (--peer-cache-copy).
 */
async function ownerOf(members: readonly Instance[], path: string): Promise<number> {
  for (let i = 0; i < members.length; i++) {
    const r = await probe(members[i].port, path, HOST);
    const cs = cacheStatusMembers(r.headers);
    if (cs.length === 1 && isHit(r.headers)) return i;
  }
  return -1;
}

/** p50/p99 of a hit through the owner and through another member, alternating, one request at a time. */
async function hopLatency(
  members: readonly Instance[],
  paths: readonly string[],
  o: FleetOptions,
  round: number,
): Promise<FleetRun[]> {
  const sample = paths.slice(0, o.quick ? 60 : 200);
  const owners = await Promise.all(sample.map((p) => ownerOf(members, p)));
  const known = sample.map((p, i) => ({ path: p, owner: owners[i] })).filter((x) => x.owner >= 0);
  const agents = members.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
  const owner = { ms: [] as number[], failures: 0 };
  const other = { ms: [] as number[], failures: 0 };
  const timed = async (i: number, path: string, into: typeof owner) => {
    const t0 = performance.now();
    const r = await probe(members[i].port, path, HOST, agents[i]);
    const ms = performance.now() - t0;
    if (r.status !== 200 || !rightBody(r.body, OBJECT_BYTES) || !isHit(r.headers)) into.failures++;
    else into.ms.push(ms);
  };
  const reps = o.quick ? 3 : 5;
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const [k, { path, owner: i }] of known.entries()) {
        const j = (i + 1 + ((k + rep) % (members.length - 1))) % members.length;
        await timed(i, path, owner);
        await timed(j, path, other);
      }
    }
  } finally {
    for (const a of agents) a.destroy();
  }
  const run = (scenario: string, xs: typeof owner, note: string): FleetRun => {
    const sorted = [...xs.ms].sort((a, b) => a - b);
    return {
      ...record0('fleet', scenario, round),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      errors: xs.failures,
      note,
    };
  };
  const what = `${owner.ms.length} hits on ${known.length} URLs whose owner answered alone (of ${sample.length})`;
  return [
    run('hop-owner', owner, what),
    run('hop-other', other, `${other.ms.length} hits through another member`),
  ];
}

/** The fleet scenario; the records run.ts writes, and the lines of its table. */
export async function fleetBench(o: FleetOptions): Promise<{ runs: FleetRun[]; table: string[] }> {
  if (o.members < 2) throw new Error('--fleet needs at least 2 members');
  const urls = o.quick ? 300 : 900;
  const { memberBytes, workingSetBytes } = fleetSizing(o.members, urls);
  const ports = await Promise.all(Array.from({ length: o.members }, () => freePort()));
  const peers = ports.map((p) => `http://127.0.0.1:${p}`);
  const members = await Promise.all(
    ports.map((p, i) => startInstance(`fleet-${i + 1}`, p, o, memberBytes, peers)),
  );
  const single = await startInstance('single', 0, o, memberBytes, []);
  const total = await startInstance('total', 0, o, memberBytes * o.members, []);
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  o.log(
    `fleet of ${o.members} cuttle ${VERSION} (${o.workers} workers each, ${mb(memberBytes)} cache each, ${mb(memberBytes * o.members)} in all) · single cuttle with ${mb(memberBytes)} ("single") and with the fleet's ${mb(memberBytes * o.members)} ("total") · working set ${urls} × ${OBJECT}B = ${mb(workingSetBytes)} · ${o.tool}`,
  );
  const runs: FleetRun[] = [];
  const record = (r: FleetRun) => {
    runs.push(r);
    o.log(
      `  ${r.system.padEnd(7)} ${r.scenario.padEnd(11)} ${r.requestsPerSec.toFixed(0).padStart(8)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  err ${r.errors}/${r.timeouts}/${r.non2xx}/${r.mismatches}${r.note ? `  ${r.note}` : ''}`,
    );
  };
  const fleetPrefix = `/hit/${OBJECT}/fleet/`;
  record(await hitRatio('fleet', members, fleetPrefix, urls, o));
  record(await hitRatio('single', [single], `/hit/${OBJECT}/single/`, urls, o));
  await single.stop();
  const totalPrefix = `/hit/${OBJECT}/total/`;
  record(await hitRatio('total', [total], totalPrefix, urls, o));
  const paths = Array.from({ length: urls }, (_, i) => `${fleetPrefix}${i}`);
  const totalPaths = Array.from({ length: urls }, (_, i) => `${totalPrefix}${i}`);
  // One unmeasured second first: V8 compiles the hot paths during it. Then the fleet and `total` alternate.
  await hitThroughput('fleet', members, fleetPrefix, paths, o, 0, 1);
  await hitThroughput('total', [total], totalPrefix, totalPaths, o, 0, 1);
  for (let round = 1; round <= o.rounds; round++) {
    record(await hitThroughput('fleet', members, fleetPrefix, paths, o, round, o.duration));
    record(await hitThroughput('total', [total], totalPrefix, totalPaths, o, round, o.duration));
    for (const r of await hopLatency(members, paths, o, round)) record(r);
  }
  await total.stop();
  return { runs, table: fleetTable(runs) };
}

/** Medians over the rounds, as the other scenarios' table. */
export function fleetTable(runs: readonly FleetRun[]): string[] {
  const of = (system: string, scenario: string) =>
    runs.filter((r) => r.system === system && r.scenario === scenario);
  const med = (rs: FleetRun[], f: (r: FleetRun) => number) => (rs.length ? median(rs.map(f)) : Number.NaN);
  const fixed = (x: number, d: number) => (Number.isNaN(x) ? '—' : x.toFixed(d));
  /** The median of a figure over the rounds, with d decimals. */
  const fig = (rs: FleetRun[], f: (r: FleetRun) => number, d: number) => fixed(med(rs, f), d);
  const fleetRatio = of('fleet', 'fleet-ratio');
  const singleRatio = of('single', 'fleet-ratio');
  const totalRatio = of('total', 'fleet-ratio');
  const hit = of('fleet', 'fleet-hit');
  const totalHit = of('total', 'fleet-hit');
  const own = of('fleet', 'hop-owner');
  const other = of('fleet', 'hop-other');
  const line = (label: string, fleet: string, single = '', total = '', unit = '') =>
    `${label.padEnd(26)}${fleet.padStart(14)}${single.padStart(12)}${total.padStart(14)}${unit}`;
  const all3 = (f: (r: FleetRun) => number, d: number) =>
    [fig(fleetRatio, f, d), fig(singleRatio, f, d), fig(totalRatio, f, d)] as const;
  const pair = (rs: FleetRun[]) => `${fig(rs, (r) => r.p50, 2)} / ${fig(rs, (r) => r.p99, 2)}`;
  const hop = (f: (r: FleetRun) => number) => {
    const x = med(other, f) - med(own, f);
    return x >= 0 ? `+${fixed(x, 2)}` : fixed(x, 2);
  };
  return [
    line('', 'fleet', 'single', 'single, total'),
    line('origin fetches per URL', ...all3((r) => r.originPerUrl ?? 0, 2)),
    line('hit ratio', ...all3((r) => r.hitRatio ?? 0, 3)),
    line(
      'hit req/s (all members)',
      fig(hit, (r) => r.requestsPerSec, 0),
      '—',
      fig(totalHit, (r) => r.requestsPerSec, 0),
    ),
    line('  p50 / p99', pair(hit), '—', pair(totalHit), ' ms'),
    line(
      '  cpu µs/req (all members)',
      fig(hit, (r) => r.cpuUsPerReq, 1),
      '—',
      fig(totalHit, (r) => r.cpuUsPerReq, 1),
    ),
    line('hit via owner p50 / p99', pair(own), '', '', ' ms'),
    line('hit via other p50 / p99', pair(other), '', '', ' ms'),
    line('  the extra hop', `${hop((r) => r.p50)} / ${hop((r) => r.p99)}`, '', '', ' ms'),
  ];
}
