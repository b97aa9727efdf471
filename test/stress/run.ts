/**
 * `npm run test:stress`: the reliability probes against the real cluster, loopback only, bounded in count
 * and time (a few minutes; `--quick`, what CI runs, well under one). Writes docs/RELIABILITY.md (or
 * `--out FILE`; `--quick` writes nothing unless asked) and exits 1 if any goal is missed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  corpus,
  idleConnections,
  killProxyWhileStoring,
  killWorker,
  originFaults,
  type Row,
  type Scale,
  slowlorisProbe,
} from './probes.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } } });
const quick = Boolean(values.quick);

/** The soft limit on open files: 10,000 idle connections need that many descriptors here and in cuttle. */
function openFileLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m?.[1] ?? 1024);
}
const limit = openFileLimit();
const wantIdle = quick ? 1000 : 10_000;
const scale: Scale = {
  quick,
  slowClients: quick ? 200 : 1000,
  idleConnections: Math.min(wantIdle, Math.floor((limit - 500) / 100) * 100),
  storeBytes: (quick ? 8 : 64) * 1024 ** 2,
  // Shares of the body received when the kill comes; Infinity: after the entry committed.
  killMoments: quick
    ? [0.3, Number.POSITIVE_INFINITY]
    : [0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 1, Number.POSITIVE_INFINITY],
};

const started = Date.now();
const loadBefore = loadavg()[0].toFixed(1);
const rows: Row[] = [];
const probes: Array<[string, () => Promise<Row[]>]> = [
  ['smuggling corpus', () => corpus(scale)],
  ['slowloris', () => slowlorisProbe(scale)],
  ['kill -9 of a worker', () => killWorker(scale)],
  ['kill -9 of the proxy while storing', () => killProxyWhileStoring(scale)],
  ['origin faults', () => originFaults()],
  ['idle keep-alive connections', () => idleConnections(scale)],
];
for (const [name, run] of probes) {
  const t0 = Date.now();
  process.stderr.write(`${name} … `);
  try {
    const r = await run();
    rows.push(...r);
    process.stderr.write(
      `${r.every((x) => x.met) ? 'met' : 'MISSED'} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
    );
    for (const x of r) process.stderr.write(`  ${x.met ? 'ok  ' : 'MISS'} ${x.probe}: ${x.figure}\n`);
  } catch (err) {
    rows.push({
      probe: name,
      figure: `the probe failed: ${(err as Error).message}`,
      goal: 'runs',
      met: false,
    });
    process.stderr.write(`FAILED: ${(err as Error).stack}\n`);
  }
}
const seconds = (Date.now() - started) / 1000;

const esc = (s: string) => s.replace(/\|/g, '\\|');
const table = [
  '| probe | figure | goal | met |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${esc(r.probe)} | ${esc(r.figure)} | ${esc(r.goal)} | ${r.met ? 'yes' : '**no**'} |`),
].join('\n');
const scaled =
  scale.idleConnections < wantIdle
    ? `\nThe open-file limit here (${limit}) allowed ${scale.idleConnections} idle connections, not ${wantIdle}: raise \`ulimit -n\` to run the full probe.\n`
    : '';
const doc = `# Reliability

What \`npm run test:stress${quick ? ' -- --quick' : ''}\` measured on ${new Date().toISOString().slice(0, 10)}: cuttle through its real CLI
(a 2-worker cluster in child processes), test origins and clients, all on 127.0.0.1 of one machine
(${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}; load average ${loadBefore} before the run,
shared with other work), in ${seconds.toFixed(0)} s. Each probe is bounded in count and
time; the run exits 1 when a goal is missed. \`--quick\` (what CI runs after \`npm test\`) uses 200 slow
clients (3 rounds), 1,000 idle connections, an 8 MiB object and 2 kill moments (30 % and after the commit), forward mode only for the corpus.
${scaled}
${table}

How each probe works (test/stress/probes.ts):

- **Smuggling corpus**: test/fixtures/smuggling (CL.TE, TE.CL, TE obfuscations, duplicate CL, obs-fold,
  bare CR/LF, NUL/CTL, bad chunks, request-line and Host anomalies), each case on its own connection with
  a follow-up on it and a request on a fresh one; an echo origin logs what it parses. A desync is a
  response answering another request or an origin request no client sent as one. The same check runs in
  \`npm test\` (test/http/smuggling.test.ts).
- **Slowloris**: a separate process holds the slow connections (a request line, then one header byte a
  second); 8 keep-alive clients at 400 req/s measure hit latency, with and without the attack, in
  alternating 3 s rounds whose latencies are pooled per kind (a miss is measured once more, and the figure
  says so); then the attack is left alone until \`timeouts.clientHeaders\` (6 s here) cuts it.
- **kill -9 of a worker**: 16 keep-alive clients of a cached object at 1,000 req/s; one worker is killed;
  failed requests are counted, and the replacement's "worker listening" log line is timed.
- **kill -9 of the proxy while storing**: the primary and every worker are killed when the client has
  received the given share of an object being stored; cuttle restarts on the same cache dir and every
  object requested so far is asked for with \`only-if-cached\`: it must be absent or whole (SHA-256). The
  last kill comes after an entry committed: that one must come back whole after every later restart.
- **Origin faults**: a raw origin; each fault is requested twice, so a stored fault would show as a single
  origin fetch.
- **Idle keep-alive connections**: each connection gets one hit and stays open; memory is the anonymous
  memory (Private_Dirty + Swap from smaps_rollup) of cuttle's process tree before and after.
`;
const out =
  values.out ?? (quick ? null : fileURLToPath(new URL('../../../docs/RELIABILITY.md', import.meta.url)));
if (out) writeFileSync(out, doc);
console.log(table);
console.log(
  `\n${rows.filter((r) => r.met).length}/${rows.length} goals met in ${seconds.toFixed(0)} s${out ? `; wrote ${out}` : ''}`,
);
process.exit(rows.every((r) => r.met) ? 0 : 1);
