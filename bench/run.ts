/**
 * `npm run bench`: cuttle through its real CLI (a real cluster) in front of a local origin, driven by
 * autocannon (or wrk with --tool wrk). Verifies that hits are hits and that bodies are right; reports
 * req/s, MB/s, latency percentiles, errors and peak RSS; writes JSON and an SVG chart to bench/results/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSize } from '../src/shared/units.js';
import { VERSION } from '../src/shared/version.js';
import { startCuttle, treeRss } from '../test/helpers/cuttle.js';
import { chartSvg } from './chart.js';

interface Scenario {
  name: string;
  path: string;
  bytes: number;
  /** What Cache-Status must say once warmed. */
  expect: RegExp;
}

export interface Figures {
  scenario: string;
  tool: string;
  requestsPerSec: number;
  mbPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches: number;
  peakRssMb: number;
  note?: string;
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '64' },
    duration: { type: 'string' },
    tool: { type: 'string', default: 'autocannon' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'npm run bench -- [--quick] [--workers N] [--connections N] [--duration SECONDS] [--tool autocannon|wrk]\n',
  );
  process.exit(0);
}
const quick = Boolean(values.quick);
const duration = Number(values.duration ?? (quick ? 2 : 10));
const connections = Number(values.connections);
const tool = String(values.tool);
if (tool !== 'autocannon' && tool !== 'wrk') fail(`unknown --tool ${tool}`);
if (tool === 'wrk' && spawnSync('wrk', ['--version']).error)
  fail('--tool wrk: wrk is not installed (apt-get install wrk)');

const SCENARIOS: Scenario[] = [
  ...['1k', '16k', '256k', '1m'].map((s) => ({
    name: `hit-${s}`,
    path: `/hit/${s}`,
    bytes: parseSize(s),
    expect: /; hit/,
  })),
  { name: 'miss-1k', path: '/miss/1k', bytes: 1024, expect: /fwd=uri-miss.*not stored: no-store/ },
  { name: 'revalidate-1k', path: '/reval/1k', bytes: 1024, expect: /fwd=stale; fwd-status=304/ },
];

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function startOrigin(): Promise<{ port: number; stop: () => void }> {
  const file = fileURLToPath(new URL('./origin.js', import.meta.url));
  const proc = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    proc.once('exit', (code) => reject(new Error(`origin exited with ${code}`)));
  });
  return { port, stop: () => proc.kill() };
}

/** One request through the proxy; returns status, Cache-Status and the body. */
function probe(
  proxyPort: number,
  url: string,
): Promise<{ status: number; cacheStatus: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxyPort, path: url, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          cacheStatus: String(res.headers['cache-status']),
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('probe timed out')));
    req.end();
  });
}

const rightBody = (b: Buffer, bytes: number) => b.length === bytes && b.every((x) => x === 0x78);

interface AutocannonResult {
  requests: { average: number };
  throughput: { average: number };
  latency: { p50: number; p99: number; p99_9?: number; p999?: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches?: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

async function load(
  proxyPort: number,
  url: string,
  bytes: number,
): Promise<Omit<Figures, 'scenario' | 'peakRssMb'>> {
  if (tool === 'wrk') {
    const script = join(resultsDir, 'path.lua');
    writeFileSync(script, `wrk.path = "${url}"\n`);
    const r = spawnSync(
      'wrk',
      [
        '-t1',
        `-c${connections}`,
        `-d${duration}s`,
        '--latency',
        '-s',
        script,
        `http://127.0.0.1:${proxyPort}/`,
      ],
      {
        encoding: 'utf8',
      },
    );
    const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? 0);
    const ms = (re: RegExp) => {
      const m = re.exec(r.stdout);
      if (!m) return 0;
      const unit = m[2];
      return Number(m[1]) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
    };
    const rps = num(/Requests\/sec:\s+([\d.]+)/);
    return {
      tool: 'wrk',
      requestsPerSec: rps,
      mbPerSec: (rps * bytes) / 1e6,
      p50: ms(/50%\s+([\d.]+)(us|ms|s)/),
      p99: ms(/99%\s+([\d.]+)(us|ms|s)/),
      p999: 0,
      errors: num(/Socket errors: connect (\d+)/),
      timeouts: num(/timeout (\d+)/),
      non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
      mismatches: 0,
      note: 'wrk reports no p99.9; bodies verified after the run',
    };
  }
  const r = await autocannon({
    url: `http://127.0.0.1:${proxyPort}`,
    connections,
    duration,
    requests: [{ method: 'GET', path: url }],
    verifyBody: (body: string) => body.length === bytes,
  });
  return {
    tool: 'autocannon',
    requestsPerSec: r.requests.average,
    mbPerSec: r.throughput.average / 1e6,
    p50: r.latency.p50,
    p99: r.latency.p99,
    p999: r.latency.p99_9 ?? r.latency.p999 ?? 0,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    mismatches: r.mismatches ?? 0,
  };
}

/** 500 concurrent requests for one cold object; how many reached the origin. */
async function coalesce(proxyPort: number, originPort: number): Promise<Figures> {
  const path = `/slow/1k?c=${Date.now()}`;
  const url = `http://127.0.0.1:${originPort}${path}`;
  const started = Date.now();
  const results = await Promise.allSettled(
    Array.from({ length: quick ? 100 : 500 }, () => probe(proxyPort, url)),
  );
  const seconds = (Date.now() - started) / 1000;
  const ok = results.filter(
    (r) => r.status === 'fulfilled' && r.value.status === 200 && rightBody(r.value.body, 1024),
  );
  const reached = await new Promise<number>((resolve, reject) => {
    request(
      { host: '127.0.0.1', port: originPort, path: `/__count?p=${encodeURIComponent(path)}` },
      (res) => {
        let t = '';
        res.on('data', (d) => {
          t += d;
        });
        res.on('end', () => resolve(Number(t)));
      },
    )
      .on('error', reject)
      .end();
  });
  return {
    scenario: 'coalesce',
    tool: 'node:http',
    requestsPerSec: results.length / seconds,
    mbPerSec: (ok.length * 1024) / seconds / 1e6,
    p50: 0,
    p99: 0,
    p999: 0,
    errors: results.length - ok.length,
    timeouts: 0,
    non2xx: 0,
    mismatches: 0,
    peakRssMb: 0,
    note: `${results.length} concurrent requests, ${reached} reached the origin`,
  };
}

const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
mkdirSync(resultsDir, { recursive: true });

const origin = await startOrigin().catch((e: Error) => fail(`origin did not start: ${e.message}`));
const cuttle = await startCuttle({ workers: Number(values.workers), logLevel: 'warn' }).catch((e: Error) =>
  fail(`cuttle did not start: ${e.message}`),
);
const figures: Figures[] = [];
let broken = false;
try {
  log(
    `cuttle ${VERSION}, ${values.workers} workers, ${tool}, ${connections} connections, ${duration} s per scenario`,
  );
  for (const s of SCENARIOS) {
    const url = `http://127.0.0.1:${origin.port}${s.path}`;
    await probe(cuttle.port, url);
    await new Promise((r) => setTimeout(r, 300));
    const warm = await probe(cuttle.port, url);
    if (!s.expect.test(warm.cacheStatus)) {
      log(`${s.name}: expected Cache-Status ${s.expect}, got "${warm.cacheStatus}"`);
      broken = true;
    }
    if (!rightBody(warm.body, s.bytes)) {
      log(`${s.name}: wrong body (${warm.body.length} bytes)`);
      broken = true;
    }
    if (process.stdout.isTTY) process.stdout.write(`  running ${s.name} for ${duration} s…\r`);
    const pid = cuttle.proc.pid as number;
    let peak = treeRss(pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, treeRss(pid));
    }, 200);
    const f = await load(cuttle.port, url, s.bytes);
    clearInterval(sampler);
    const after = await probe(cuttle.port, url);
    if (!rightBody(after.body, s.bytes) || f.mismatches > 0) {
      log(`${s.name}: wrong bytes served (${f.mismatches} mismatches)`);
      broken = true;
    }
    figures.push({ scenario: s.name, ...f, peakRssMb: Math.round(peak / 1e6) });
    log(row(figures[figures.length - 1]));
  }
  const c = await coalesce(cuttle.port, origin.port);
  figures.push(c);
  log(row(c));
} finally {
  await cuttle.stop();
  origin.stop();
}

function row(f: Figures): string {
  const n = (x: number, d = 0) => x.toFixed(d).padStart(9);
  return `${f.scenario.padEnd(14)}${n(f.requestsPerSec)} req/s${n(f.mbPerSec, 1)} MB/s  p50 ${n(f.p50, 2)} ms  p99 ${n(f.p99, 2)} ms  p99.9 ${n(f.p999, 2)} ms  err ${f.errors}/${f.timeouts}/${f.non2xx}  rss ${f.peakRssMb} MB  [${f.tool}]${f.note ? `  ${f.note}` : ''}`;
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const machine = { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version };
const json = join(resultsDir, `${stamp}.json`);
writeFileSync(
  json,
  JSON.stringify({ version: VERSION, quick, tool, connections, duration, machine, figures }, null, 2),
);
writeFileSync(
  join(resultsDir, `${stamp}.svg`),
  chartSvg(figures, `cuttle ${VERSION} · ${tool} · ${machine.cores} cores · Node ${machine.node}`),
);
log(`results: ${json} (and .svg)`);
if (broken) fail('the bench found wrong responses (see above)');
