/**
 * `npm run bench`: cuttle through its real CLI (a real cluster) in front of a local origin, side by side
 * with whichever of Squid, nginx and Varnish are installed, in alternating rounds. Verifies that hits are
 * hits and that bodies are right; reports req/s, MB/s, latency percentiles, errors and peak RSS, as medians
 * over the rounds with the ratio cuttle/peer; writes JSON and an SVG chart to bench/results/.
 * It fails only when the bench itself broke (a server did not start, wrong bytes were served), never on speed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSize } from '../src/config/units.js';
import { VERSION } from '../src/shared/version.js';
import { median } from '../src/stats/counters.js';
import { treeAnon, treeCpu, treeRss } from '../test/helpers/cuttle.js';
import { chartSvg } from './chart.js';
import { fleetBench } from './fleet.js';
import { type Figures, load, probe, rightBody, tunnelLoad } from './load.js';
import {
  installPeers,
  type OriginPorts,
  PEERS,
  type Peer,
  peerVersion,
  type System,
  startCuttleSystem,
  startPeer,
} from './systems.js';
import { handshakeRate, loadH2, probeTls, startCuttleTls, startNginxTls } from './tls.js';

export interface Run extends Figures {
  system: string;
  scenario: string;
  round: number;
  peakRssMb: number;
  /** Peak anonymous memory of the whole tree (Private_Dirty + Swap), MB: RSS without the LMDB map's file pages. */
  peakAnonMb: number;
  /** CPU time (user + system) of the server's whole process tree over the run, per request, µs. */
  cpuUsPerReq: number;
  /** coalesce: how many of the concurrent requests reached the origin. */
  reached?: number;
}

interface Scenario {
  name: string;
  path: string;
  bytes: number;
  /** What cuttle's Cache-Status must say once warmed. */
  expect: RegExp;
  /** Whether a peer must answer it from its cache. */
  hit: boolean;
}

const USAGE = `npm run bench -- [options]
  --quick                 short runs (2 s, 1 round); what CI runs
  --workers N[,N…]        cuttle workers (default 2); a list (1,2,4) runs one cuttle per count, named
                          cuttle-wN, to show scaling (peers and the reference get the first count)
  --connections N         concurrent connections (default 64)
  --duration SECONDS      per scenario and system (default 10, quick 2)
  --rounds N              alternating rounds (default 3, quick 1)
  --tool autocannon|wrk   load generator (default autocannon)
  --compare LIST          peers: squid,nginx,varnish,node or none (default: those installed; node is a
                          fixed-response node:http cluster, the platform's floor)
  --baseline DIR          also run the cuttle built in checkout DIR (npm ci && npm run build there), as
                          'baseline', in the same alternating rounds: a change against its parent
  --baseline-args "ARGS"  extra cuttle flags for the baseline (with --baseline . the cost of an option,
                          e.g. --baseline . --baseline-args "--metrics off")
  --scenarios LIST        a subset of: ${'hit-1k,hit-16k,hit-256k,hit-1m,miss-1k,revalidate-1k,connect,coalesce,herd,purge'}
  --tls                   the HTTPS edge instead: hit-1k and hit-16k over HTTPS/1.1 (wrk), and the full
                          handshake rate, cuttle (--https-port) vs nginx (listen … ssl http2, same cert)
  --h2                    the HTTPS edge over HTTP/2 (h2load, from nghttp2-client); with --tls, both
  --fleet N               a fleet of N cuttle edges (--peer, CARP) instead: origin fetches per URL and hit
                          ratio against a single cuttle with one member's cache, hit throughput over all
                          members, and the extra hop's p50/p99 (a hit through a member that is not the owner)
  --install-peers         apt-get install squid nginx varnish wrk nghttp2-client first
`;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '64' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    tool: { type: 'string', default: 'autocannon' },
    compare: { type: 'string' },
    scenarios: { type: 'string' },
    'install-peers': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    h2: { type: 'boolean', default: false },
    fleet: { type: 'string' },
    baseline: { type: 'string' },
    'baseline-args': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
}
const log = (line: string) => {
  if (process.stdout.isTTY) process.stdout.write('\x1b[2K\r');
  process.stdout.write(`${line}\n`);
};
const positive = (name: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`--${name} must be a positive whole number, not "${v}"`);
  return n;
};

const quick = Boolean(values.quick);
const duration = positive('duration', values.duration ?? (quick ? '2' : '10'));
const rounds = positive('rounds', values.rounds ?? (quick ? '1' : '3'));
const connections = positive('connections', values.connections ?? '64');
const workerCounts = (values.workers ?? '2').split(',').map((w) => positive('workers', w));
const workers = workerCounts[0];
const tool = values.tool as 'autocannon' | 'wrk';
if (tool !== 'autocannon' && tool !== 'wrk') fail(`unknown --tool ${tool} (autocannon or wrk)`);
if (values['install-peers']) {
  try {
    installPeers(log);
  } catch (e) {
    fail((e as Error).message);
  }
}
if (tool === 'wrk' && spawnSync('wrk', ['--version']).error)
  fail('--tool wrk: wrk is not installed (apt-get install wrk, or --install-peers)');
const overTls = Boolean(values.tls);
const overH2 = Boolean(values.h2);
const fleetSize = values.fleet === undefined ? 0 : positive('fleet', values.fleet);
if (fleetSize === 1) fail('--fleet needs at least 2 members');
if (fleetSize > 0 && (overTls || overH2)) fail('--fleet runs on its own, without --tls or --h2');
if (overTls && spawnSync('wrk', ['--version']).error)
  fail('--tls: wrk is not installed (apt-get install wrk, or --install-peers)');
if (overH2 && spawnSync('h2load', ['--version']).error)
  fail('--h2: h2load is not installed (apt-get install nghttp2-client, or --install-peers)');
/** The load generators the figures come from, as the report names them. */
const tools =
  overTls || overH2 ? [overTls ? 'wrk' : '', overH2 ? 'h2load' : ''].filter(Boolean).join('+') : tool;

const peerVersions = Object.fromEntries(PEERS.map((p) => [p, peerVersion(p)])) as Record<Peer, string | null>;
const peers: Peer[] = (() => {
  if (values.compare === undefined) return PEERS.filter((p) => peerVersions[p] !== null);
  if (values.compare === 'none' || values.compare === '') return [];
  return values.compare.split(',').map((p) => {
    if (!PEERS.includes(p as Peer))
      fail(`--compare: unknown peer "${p}" (squid, nginx, varnish, node or none)`);
    if (peerVersions[p as Peer] === null) fail(`--compare: ${p} is not installed (try --install-peers)`);
    return p as Peer;
  });
})();

const SIZES = ['1k', '16k', '256k', '1m'];
const ALL_SCENARIOS: Scenario[] = [
  ...SIZES.map((s) => ({
    name: `hit-${s}`,
    path: `/hit/${s}`,
    bytes: parseSize(s),
    expect: /; hit/,
    hit: true,
  })),
  {
    name: 'miss-1k',
    path: '/miss/1k',
    bytes: 1024,
    expect: /fwd=uri-miss.*not stored: no-store/,
    hit: false,
  },
  { name: 'revalidate-1k', path: '/reval/1k', bytes: 1024, expect: /fwd=stale; fwd-status=304/, hit: false },
  // The origin answers /hit/256k on TLS too; through a tunnel the proxy sees only bytes.
  { name: 'connect', path: '/hit/256k', bytes: 256 * 1024, expect: /.*/, hit: false },
];
const wanted = values.scenarios?.split(',');
for (const w of wanted ?? [])
  if (!['coalesce', 'herd', 'purge'].includes(w) && !ALL_SCENARIOS.some((s) => s.name === w))
    fail(`--scenarios: unknown scenario "${w}"`);
const scenarios = ALL_SCENARIOS.filter((s) => !wanted || wanted.includes(s.name));
const withCoalesce = !wanted || wanted.includes('coalesce');
const withHerd = !wanted || wanted.includes('herd');
const withPurge = !wanted || wanted.includes('purge');
/** Entries stored under one tag before the purge scenario removes them in one request. */
const PURGE_ENTRIES = 10_000;
/** The thundering herd's connections: a thousand clients on one object that expires every second. */
const HERD_CONNECTIONS = 1000;

const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
mkdirSync(resultsDir, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), 'cuttle-bench-'));
// Squid and nginx workers run as unprivileged users and must reach their dirs inside.
chmodSync(scratch, 0o755);

async function startOrigin(): Promise<OriginPorts & { stop: () => void }> {
  const file = fileURLToPath(new URL('./origin.js', import.meta.url));
  const proc = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports = await new Promise<OriginPorts>((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve(JSON.parse(String(d)) as OriginPorts));
    proc.once('exit', (code) => reject(new Error(`origin exited with ${code}`)));
  });
  return { ...ports, stop: () => proc.kill() };
}

function originCount(port: number, path: string): Promise<number> {
  return probe(port, `/__count?p=${encodeURIComponent(path)}`).then((r) => Number(r.body.toString()));
}

const targetFor = (sys: System, origin: OriginPorts, path: string) =>
  sys.forward ? `http://127.0.0.1:${origin.http}${path}` : path;

const isCuttle = (sys: System) => sys.name.startsWith('cuttle') || sys.name === 'baseline';

/** Warms the object and checks that the system now answers it as it should, with the right body. */
async function warm(sys: System, origin: OriginPorts, s: Scenario): Promise<string | null> {
  const target = targetFor(sys, origin, s.path);
  await probe(sys.port, target);
  await new Promise((r) => setTimeout(r, 300));
  const r = await probe(sys.port, target);
  if (!rightBody(r.body, s.bytes)) return `wrong body after warming (${r.body.length} bytes)`;
  if (isCuttle(sys) && !s.expect.test(String(r.headers['cache-status'])))
    return `expected Cache-Status ${s.expect}, got "${r.headers['cache-status']}"`;
  if (s.hit && !sys.isHit(r.headers)) return 'not a hit after warming';
  return null;
}

function progressBar(sys: string, scenario: string, round: number) {
  if (!process.stdout.isTTY) return undefined;
  return (elapsed: number, requests: number | null) => {
    const width = 24;
    const filled = Math.min(width, Math.round((elapsed / duration) * width));
    const rate = requests !== null && elapsed > 0 ? `  ${Math.round(requests / elapsed)} req/s` : '';
    process.stdout.write(
      `\x1b[2K\r  ${sys.padEnd(8)} ${scenario.padEnd(14)} round ${round}/${rounds} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${elapsed.toFixed(1)}/${duration} s${rate}`,
    );
  };
}

/** A run that is not a load tool's: what it counted, with no latency or resource figures of its own. */
function countedRun(
  sys: System,
  scenario: string,
  round: number,
  figures: Pick<Run, 'requestsPerSec' | 'mbPerSec' | 'errors' | 'note'> & Partial<Run>,
): Run {
  return {
    system: sys.name,
    scenario,
    round,
    tool: 'node:http',
    p50: 0,
    p99: 0,
    p999: 0,
    timeouts: 0,
    non2xx: 0,
    mismatches: 0,
    peakRssMb: 0,
    peakAnonMb: 0,
    cpuUsPerReq: 0,
    ...figures,
  };
}

/** 500 concurrent requests for one cold object; how many reached the origin. */
async function coalesce(sys: System, origin: OriginPorts, round: number): Promise<Run> {
  const path = `/slow/1k?c=${sys.name}-${round}-${Date.now()}`;
  const target = targetFor(sys, origin, path);
  const n = quick ? 100 : 500;
  const started = Date.now();
  const results = await Promise.allSettled(Array.from({ length: n }, () => probe(sys.port, target)));
  const seconds = (Date.now() - started) / 1000;
  const ok = results.filter(
    (r) => r.status === 'fulfilled' && r.value.status === 200 && rightBody(r.value.body, 1024),
  ).length;
  const reached = await originCount(origin.http, path);
  return countedRun(sys, 'coalesce', round, {
    requestsPerSec: n / seconds,
    mbPerSec: (ok * 1024) / seconds / 1e6,
    errors: n - ok,
    reached,
    note: `${n} concurrent requests, ${reached} reached the origin`,
  });
}

/**
 * The thundering herd: 1000 connections ask for one object that expires every second (max-age=1, the origin
 * taking 100 ms to answer), so it expires several times during the run. How many fetches reached the origin
 * (one per expiry is the ideal; a system that serves stale while it refreshes may make fewer waits), and
 * what the clients' p99 was.
 */
async function herd(sys: System, origin: OriginPorts, round: number): Promise<Run> {
  const path = `/expiring/1k?h=${sys.name}-${round}-${Date.now()}`;
  const target = targetFor(sys, origin, path);
  await probe(sys.port, target);
  const before = await originCount(origin.http, path);
  const seconds = quick ? 3 : 6;
  const cpuBefore = treeCpu(sys.pid);
  const started = Date.now();
  const f = await load({
    port: sys.port,
    target,
    bytes: 1024,
    connections: HERD_CONNECTIONS,
    duration: seconds,
    tool,
    scratchDir: scratch,
  });
  const cpu = treeCpu(sys.pid) - cpuBefore;
  const served = f.requestsPerSec * ((Date.now() - started) / 1000);
  const reached = (await originCount(origin.http, path)) - before;
  return {
    system: sys.name,
    scenario: 'herd',
    round,
    ...f,
    peakRssMb: Math.round(treeRss(sys.pid) / 1e6),
    peakAnonMb: Math.round(treeAnon(sys.pid) / 1e6),
    cpuUsPerReq: served > 0 ? (cpu * 1e6) / served : 0,
    reached,
    note: `${HERD_CONNECTIONS} connections for ${seconds} s on an object expiring every second: ${reached} origin fetches`,
  };
}

/**
 * Purge by tag (cuttle only: Squid and nginx have none, Varnish needs the xkey vmod): 10,000 entries stored
 * with one Surrogate-Key, then one `POST /cuttle-internal/purge {"tags": [...]}`; how long it took, and
 * whether every entry went.
 */
async function purgeByTag(sys: System, origin: OriginPorts, round: number): Promise<Run> {
  const tag = `bench-${sys.name}-${round}-${Date.now()}`;
  const n = quick ? 2_000 : PURGE_ENTRIES;
  const targets = Array.from({ length: n }, (_, i) => targetFor(sys, origin, `/tagged/1k?tag=${tag}&n=${i}`));
  for (let i = 0; i < n; i += 64) await Promise.all(targets.slice(i, i + 64).map((t) => probe(sys.port, t)));
  // Entries commit a little after their response: wait until the last one is a hit.
  for (let i = 0; i < 50 && !sys.isHit((await probe(sys.port, targets[n - 1])).headers); i++)
    await new Promise((r) => setTimeout(r, 100));
  const started = performance.now();
  const r = await post(sys.port, '/cuttle-internal/purge', JSON.stringify({ tags: [tag] }));
  const ms = performance.now() - started;
  const purged = Number((JSON.parse(r) as { purged?: number }).purged ?? 0);
  if (purged !== n) breaks(`${sys.name} purge: ${purged} of ${n} entries purged`);
  return countedRun(sys, 'purge', round, {
    requestsPerSec: purged / (ms / 1000),
    mbPerSec: 0,
    p50: ms,
    p99: ms,
    p999: ms,
    errors: n - purged,
    note: `${purged} entries with one tag purged in ${ms.toFixed(0)} ms`,
  });
}

/** A POST to the system itself; resolves with the body. */
function post(port: number, path: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${path} timed out`)));
    req.end(body);
  });
}

function row(r: Run): string {
  const n = (x: number, d = 0) => x.toFixed(d).padStart(9);
  return `${r.system.padEnd(8)} ${r.scenario.padEnd(14)}${n(r.requestsPerSec)} req/s${n(r.mbPerSec, 1)} MB/s  p50 ${n(r.p50, 2)} ms  p99 ${n(r.p99, 2)} ms  p99.9 ${n(r.p999, 2)} ms  cpu ${n(r.cpuUsPerReq, 1)} µs/req  err ${r.errors}/${r.timeouts}/${r.non2xx}  rss ${r.peakRssMb} MB anon ${r.peakAnonMb} MB  [${r.tool}]${r.note ? `  ${r.note}` : ''}`;
}

/** Medians over the rounds, one per system and scenario; counts of errors are summed, RSS is the peak. */
export function medians(runs: Run[]): Run[] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const k = `${r.system}\0${r.scenario}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const pick = (f: (r: Run) => number) => median(g.map(f));
    const sum = (f: (r: Run) => number) => g.reduce((a, r) => a + f(r), 0);
    return {
      ...g[0],
      round: 0,
      requestsPerSec: pick((r) => r.requestsPerSec),
      mbPerSec: pick((r) => r.mbPerSec),
      p50: pick((r) => r.p50),
      p99: pick((r) => r.p99),
      p999: pick((r) => r.p999),
      errors: sum((r) => r.errors),
      timeouts: sum((r) => r.timeouts),
      non2xx: sum((r) => r.non2xx),
      mismatches: sum((r) => r.mismatches),
      peakRssMb: Math.max(...g.map((r) => r.peakRssMb)),
      peakAnonMb: Math.max(...g.map((r) => r.peakAnonMb)),
      cpuUsPerReq: pick((r) => r.cpuUsPerReq),
      reached: g[0].reached === undefined ? undefined : pick((r) => r.reached ?? 0),
      note: g.length > 1 ? `median of ${g.length}` : g[0].note,
    };
  });
}

function compareTable(meds: Run[], systems: string[]): string[] {
  const find = (sys: string, sc: string) => meds.find((m) => m.system === sys && m.scenario === sc);
  const names = [...new Set(meds.map((m) => m.scenario))];
  const cols = systems.map((s) => s.padStart(12)).join('');
  const ratios = systems
    .slice(1)
    .map((s) => `c/${s}`.padStart(10))
    .join('');
  const lines = [
    `${'scenario'.padEnd(14)} ${cols}  ${ratios}   (req/s, then p99 ms, then CPU per request; c = cuttle)`,
  ];
  for (const sc of names) {
    // The first system is this cuttle (the first worker count of a list); the ratios are against it.
    const c = find(systems[0], sc);
    const rps = systems.map((s) => (find(s, sc) ? Math.round(find(s, sc)?.requestsPerSec ?? 0) : '—'));
    const p99 = systems.map((s) => (find(s, sc) ? (find(s, sc)?.p99 ?? 0).toFixed(1) : '—'));
    const cpu = systems.map((s) => (find(s, sc) ? `${(find(s, sc)?.cpuUsPerReq ?? 0).toFixed(1)}µs` : '—'));
    const rat = systems.slice(1).map((s) => {
      const p = find(s, sc);
      return (
        p && c && p.requestsPerSec > 0 ? `${(c.requestsPerSec / p.requestsPerSec).toFixed(2)}×` : '—'
      ).padStart(10);
    });
    lines.push(`${sc.padEnd(14)} ${rps.map((x) => String(x).padStart(12)).join('')}  ${rat.join('')}`);
    if (sc === 'purge') {
      lines.push(
        `${'  ms'.padEnd(14)} ${systems.map((s) => (find(s, sc) ? (find(s, sc)?.p50 ?? 0).toFixed(0) : '—').padStart(12)).join('')}`,
      );
    } else if (sc === 'herd') {
      lines.push(`${''.padEnd(14)} ${p99.map((x) => String(x).padStart(12)).join('')}`);
      lines.push(
        `${'  at origin'.padEnd(14)} ${systems.map((s) => String(find(s, sc)?.reached ?? '—').padStart(12)).join('')}`,
      );
    } else if (sc !== 'coalesce') {
      lines.push(`${''.padEnd(14)} ${p99.map((x) => String(x).padStart(12)).join('')}`);
      lines.push(`${''.padEnd(14)} ${cpu.map((x) => x.padStart(12)).join('')}`);
    } else
      lines.push(
        `${'  at origin'.padEnd(14)} ${systems.map((s) => String(find(s, sc)?.reached ?? '—').padStart(12)).join('')}`,
      );
  }
  return lines;
}

// ---- the run ----

const origin = await startOrigin().catch((e: Error) => fail(`origin did not start: ${e.message}`));
const systems: System[] = [];
const runs: Run[] = [];
let broken = false;
const warmed = new Set<string>();
const breaks = (what: string) => {
  log(`BROKEN: ${what}`);
  broken = true;
};
let fleetTableLines: string[] = [];
try {
  if (fleetSize > 0) await fleet();
  else if (overTls || overH2) await edgeOverTls();
  else await proxies();
} catch (e) {
  breaks((e as Error).message);
} finally {
  for (const s of systems) await s.stop().catch(() => {});
  origin.stop();
  rmSync(scratch, { recursive: true, force: true });
}

/** `--fleet N`: the fleet scenario (fleet.ts), which starts its own instances. */
async function fleet(): Promise<void> {
  const r = await fleetBench({
    members: fleetSize,
    workers,
    origin,
    connections,
    duration,
    rounds,
    tool,
    scratchDir: scratch,
    quick,
    log,
    started: (sys) => systems.push(sys),
  });
  runs.push(...r.runs);
  fleetTableLines = r.table;
  for (const x of r.runs)
    if (x.errors + x.timeouts + x.non2xx + x.mismatches > 0)
      breaks(
        `${x.system} ${x.scenario}: ${x.errors} errors, ${x.timeouts} timeouts, ${x.non2xx} non-2xx, ${x.mismatches} wrong bodies`,
      );
}

/** `--tls` / `--h2`: cuttle's HTTPS edge beside nginx's, hits and handshakes. */
async function edgeOverTls(): Promise<void> {
  systems.push(await startCuttleTls(workers, origin));
  if (peers.includes('nginx')) systems.push(await startNginxTls(scratch, origin, workers));
  log(
    `${systems.map((s) => `${s.name} ${s.version}`).join(', ')} (${workers} workers each) · HTTPS edge${overTls ? ' · HTTP/1.1 with wrk' : ''}${overH2 ? ' · HTTP/2 with h2load' : ''}, ${connections} connections, ${duration} s per run, ${rounds} round${rounds > 1 ? 's' : ''}`,
  );
  const sizes = ['1k', '16k'];
  for (let round = 1; round <= rounds; round++) {
    for (const sys of systems) {
      for (const size of sizes) {
        const path = `/hit/${size}`;
        const bytes = parseSize(size);
        if (!warmed.has(`${sys.name} ${path}`)) {
          await probeTls(sys.port, path);
          await new Promise((r) => setTimeout(r, 300));
          const r = await probeTls(sys.port, path);
          if (!rightBody(r.body, bytes)) breaks(`${sys.name} ${path}: wrong body after warming`);
          if (!sys.isHit(r.headers)) breaks(`${sys.name} ${path}: not a hit after warming`);
          warmed.add(`${sys.name} ${path}`);
          // One unmeasured second first, as for the proxies: V8 compiles the hot path during it.
          if (overTls)
            await load({
              port: sys.port,
              target: path,
              bytes,
              connections,
              duration: 1,
              tool: 'wrk',
              scratchDir: scratch,
              https: true,
            });
          if (overH2) await loadH2(sys.port, path, bytes, connections, 1);
        }
        if (overTls)
          await measured(sys, `tls-hit-${size}`, round, () =>
            load({
              port: sys.port,
              target: path,
              bytes,
              connections,
              duration,
              tool: 'wrk',
              scratchDir: scratch,
              https: true,
            }),
          );
        if (overH2)
          await measured(sys, `h2-hit-${size}`, round, () =>
            loadH2(sys.port, path, bytes, connections, duration),
          );
        const after = await probeTls(sys.port, path);
        if (!rightBody(after.body, bytes)) breaks(`${sys.name} ${path}: wrong body after the run`);
      }
      await measured(sys, 'handshake', round, () => handshakeRate(sys.port, 8, duration));
    }
  }
}

/** One measured run: CPU and memory over the server's process tree around `run`. */
async function measured(
  sys: System,
  scenario: string,
  round: number,
  run: () => Promise<Figures>,
): Promise<Figures> {
  let peak = treeRss(sys.pid);
  let peakAnon = treeAnon(sys.pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, treeRss(sys.pid));
    peakAnon = Math.max(peakAnon, treeAnon(sys.pid));
  }, 200);
  const cpuBefore = treeCpu(sys.pid);
  const startedAt = Date.now();
  const f = await run().finally(() => clearInterval(sampler));
  const cpu = treeCpu(sys.pid) - cpuBefore;
  const served = f.requestsPerSec * ((Date.now() - startedAt) / 1000);
  const r: Run = {
    system: sys.name,
    scenario,
    round,
    ...f,
    peakRssMb: Math.round(peak / 1e6),
    peakAnonMb: Math.round(peakAnon / 1e6),
    cpuUsPerReq: served > 0 ? (cpu * 1e6) / served : 0,
  };
  runs.push(r);
  log(row(r));
  return f;
}

/** The proxies' bench: cuttle, the baseline and the peers, every scenario, alternating rounds. */
async function proxies(): Promise<void> {
  for (const n of workerCounts) {
    const sys = await startCuttleSystem(n, origin);
    if (workerCounts.length > 1) sys.name = `cuttle-w${n}`;
    systems.push(sys);
  }
  if (values.baseline !== undefined) {
    const args = values['baseline-args']?.split(' ').filter(Boolean) ?? [];
    systems.push(await startCuttleSystem(workers, origin, values.baseline, args));
  }
  for (const p of peers) systems.push(await startPeer(p, scratch, origin, workers));
  log(
    `${systems.map((s) => `${s.name} ${s.version}`).join(', ')} (${workers} workers each) · ${tool}, ${connections} connections, ${duration} s per run, ${rounds} round${rounds > 1 ? 's' : ''}`,
  );
  for (let round = 1; round <= rounds; round++) {
    for (const sys of systems) {
      try {
        await runScenarios(sys, round);
      } catch (e) {
        breaks(`${sys.name}: ${(e as Error).message}`);
      }
    }
  }
}

async function runScenarios(sys: System, round: number): Promise<void> {
  for (const s of scenarios) {
    if (s.name === 'connect' && !sys.forward) continue;
    const target = targetFor(sys, origin, s.path);
    if (s.name !== 'connect' && !warmed.has(`${sys.name} ${s.name}`)) {
      const problem = await warm(sys, origin, s);
      warmed.add(`${sys.name} ${s.name}`);
      // A peer that does not cache an object is reported, not a broken bench: that is its behaviour.
      if (problem && (isCuttle(sys) || problem.startsWith('wrong body')))
        breaks(`${sys.name} ${s.name}: ${problem}`);
      else if (problem) log(`note: ${sys.name} ${s.name}: ${problem}`);
      // One unmeasured second first: V8 compiles cuttle's hot path during it, as the peers' C needs no warm-up.
      await load({
        port: sys.port,
        target,
        bytes: s.bytes,
        connections,
        duration: 1,
        tool,
        scratchDir: scratch,
      });
    }
    const opts = {
      port: sys.port,
      target,
      bytes: s.bytes,
      connections,
      duration,
      tool,
      scratchDir: scratch,
      progress: progressBar(sys.name, s.name, round),
    };
    const f = await measured(sys, s.name, round, () =>
      s.name === 'connect' ? tunnelLoad({ ...opts, tlsPort: origin.https, path: s.path }) : load(opts),
    );
    if (s.name !== 'connect') {
      const after = await probe(sys.port, target);
      if (!rightBody(after.body, s.bytes)) breaks(`${sys.name} ${s.name}: wrong body after the run`);
    }
    if (f.mismatches > 0) breaks(`${sys.name} ${s.name}: ${f.mismatches} responses with wrong bytes`);
    if (s.name === 'connect' && f.errors > 0) breaks(`${sys.name} connect: ${f.note}`);
  }
  // The reference answers without an origin: nothing to coalesce.
  if (withCoalesce && sys.name !== 'node') {
    const c = await coalesce(sys, origin, round);
    runs.push(c);
    log(row(c));
  }
  if (withHerd && sys.name !== 'node') {
    const h = await herd(sys, origin, round);
    runs.push(h);
    log(row(h));
  }
  if (withPurge && isCuttle(sys)) {
    const p = await purgeByTag(sys, origin, round);
    runs.push(p);
    log(row(p));
  }
}

const meds = medians(runs);
const names = fleetSize > 0 ? ['fleet', 'single', 'total'] : systems.map((s) => s.name);
if (fleetSize > 0) {
  log('');
  log(`medians over ${rounds} round${rounds > 1 ? 's' : ''} (${tools}):`);
  for (const l of fleetTableLines) log(l);
} else if (runs.length > 0) {
  log('');
  log(`medians over ${rounds} round${rounds > 1 ? 's' : ''} (${tools}):`);
  for (const l of compareTable(meds, names)) log(l);
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const machine = {
  cores: cpus().length,
  cpu: cpus()[0]?.model,
  node: process.version,
  kernel: release(),
};
const versions = Object.fromEntries(systems.map((s) => [s.name, s.version]));
const json = join(resultsDir, `${stamp}.json`);
writeFileSync(
  json,
  JSON.stringify(
    {
      version: VERSION,
      quick,
      tool: tools,
      connections,
      duration,
      rounds,
      workers,
      ...(fleetSize > 0 ? { fleet: fleetSize } : {}),
      machine,
      versions,
      medians: meds,
      runs,
    },
    null,
    2,
  ),
);
writeFileSync(
  join(resultsDir, `${stamp}.svg`),
  chartSvg(
    meds,
    names,
    `cuttle ${VERSION} vs ${names.slice(1).join(', ') || 'itself'} · ${tools} -c${connections} · ${machine.cores} cores · Node ${machine.node}`,
  ),
);
log(`results: ${json} (and .svg)`);
if (broken) fail('the bench broke (see BROKEN above)');
