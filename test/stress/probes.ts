/**
 * The stress probes. Each starts what it needs (a test origin, cuttle through its real CLI) on 127.0.0.1,
 * runs for a bounded time, and returns rows for docs/RELIABILITY.md: the probe, its figure, its goal and
 * whether the goal was met.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Cuttle,
  processTree,
  sleep,
  startCuttle,
  startOrigin,
  treeAnon,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';
import { loadCorpus, runCorpus, startEchoOrigin } from '../helpers/smuggling.js';
import { load, median, percentile, slowloris } from './load.js';

export interface Row {
  probe: string;
  figure: string;
  goal: string;
  met: boolean;
}

export interface Scale {
  quick: boolean;
  slowClients: number;
  idleConnections: number;
  storeBytes: number;
  killMoments: number[];
}

const ms = (n: number) => `${Math.round(n)} ms`;
const s1 = (n: number) => `${(n / 1000).toFixed(2)} s`;

/** A 1 KiB cacheable object, as the throughput probes use. */
async function hitOrigin() {
  return startOrigin((_req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=3600', 'Content-Length': 1024 });
    res.end(Buffer.alloc(1024, 'x'));
  });
}

export async function corpus(scale: Scale): Promise<Row[]> {
  const cases = loadCorpus();
  const origin = await startEchoOrigin();
  const rows: Row[] = [];
  for (const mode of scale.quick ? ['forward'] : ['forward', 'reverse']) {
    const c = await startCuttle({
      workers: 2,
      logLevel: 'warn',
      args: mode === 'reverse' ? ['--origin', origin.url] : [],
    });
    const r = await runCorpus(cases, c.port, origin, { reverse: mode === 'reverse' });
    const crashes = c.logs().filter((l) => l.msg === 'worker died').length;
    await c.stop();
    const rejected = r.results.filter((x) => x.outcome === 'rejected').length;
    rows.push({
      probe: `Smuggling corpus, ${mode} mode (${cases.length} cases, 9 classes)`,
      figure: `${r.desyncs} desyncs, ${r.hangs} hangs, ${r.openAfterError} errors left open, ${crashes} crashes; ${rejected} rejected, ${r.failures.length} failed checks`,
      goal: '0 desyncs, 0 hangs, 0 crashes; every error closes its connection',
      met: r.failures.length === 0 && crashes === 0,
    });
    for (const f of r.failures.slice(0, 20)) console.error(`  ${mode}: ${f}`);
  }
  await origin.close();
  return rows;
}

export async function slowlorisProbe(scale: Scale): Promise<Row[]> {
  const origin = await hitOrigin();
  const headersTimeout = 6000;
  const c = await startCuttle({
    workers: 2,
    logLevel: 'warn',
    config: { timeouts: { clientHeaders: headersTimeout } },
  });
  const target = `${origin.url}/hit`;
  await viaProxy(c.port, target);
  await waitStored(c.cacheDir, target);
  const measure = () => load({ port: c.port, target, connections: 8, durationMs: 3000, rate: 400 });
  await measure(); // warm-up: V8 compiles the hit path
  const rounds = scale.quick ? 3 : 5;
  // Alternating rounds without and with the attack; the latencies of each kind are pooled, so p99 is taken
  // over thousands of samples and a stall of this shared machine lands on both kinds alike.
  const trial = async () => {
    const base: number[] = [];
    const attacked: number[] = [];
    let errors = 0;
    for (let round = 0; round < rounds; round++) {
      const b = await measure();
      base.push(...b.latencies);
      const attacker = await slowloris(c.port, scale.slowClients, true);
      // The primary accepts each connection and hands it to a worker over IPC: let that settle, then
      // measure the attack's steady state (the slow connections stay open, trickling bytes).
      await sleep(1500);
      const a = await measure();
      attacked.push(...a.latencies);
      errors += a.errors + b.errors;
      await attacker.stop();
    }
    const sort = (xs: number[]) => xs.sort((x, y) => x - y);
    return {
      pBase: percentile(sort(base), 99),
      pAttack: percentile(sort(attacked), 99),
      errors,
      n: base.length,
    };
  };
  let t = await trial();
  // A miss is measured once more: a real regression misses twice, a burst of other load rarely does.
  const remeasured = t.pAttack > t.pBase * 1.2;
  if (remeasured) t = await trial();
  const { pBase, pAttack, errors } = t;
  // Then one attack left alone: every slow connection must be cut with 408 once the header timeout passes.
  const lone = await slowloris(c.port, scale.slowClients, false);
  const giveUp = setTimeout(() => void lone.stop(), headersTimeout + 10_000);
  const report = await lone.done;
  clearTimeout(giveUp);
  await c.stop();
  await origin.close();
  const cut = report.timedOut.sort((x, y) => x - y);
  return [
    {
      probe: `Slowloris: ${scale.slowClients} slow clients; p99 of 8 other clients at 400 req/s (${rounds} alternating 3 s rounds of each, pooled)`,
      figure: `p99 ${pBase.toFixed(2)} ms without, ${pAttack.toFixed(2)} ms with (${((pAttack / pBase - 1) * 100).toFixed(0)} %) over ${t.n} requests each; ${errors} errors${remeasured ? '; measured twice, the first missed' : ''}`,
      goal: 'p99 within +20 %, no errors',
      met: pAttack <= pBase * 1.2 && errors === 0,
    },
    {
      probe: `Slowloris: the slow clients cut off (timeouts.clientHeaders ${s1(headersTimeout)})`,
      figure: `${cut.length} of ${report.opened} answered 408, after ${s1(percentile(cut, 50))} (median), ${s1(cut.at(-1) ?? Number.NaN)} (last)${report.otherClose ? `; others: ${JSON.stringify(report.otherReasons)}` : ''}`,
      goal: 'every one cut with 408 within the timeout + 2 s',
      met: cut.length === report.opened && (cut.at(-1) ?? Number.POSITIVE_INFINITY) <= headersTimeout + 2000,
    },
  ];
}

export async function killWorker(scale: Scale): Promise<Row[]> {
  const origin = await hitOrigin();
  const t0 = Date.now();
  const c = await startCuttle({ workers: 2, logLevel: 'info' });
  const startMs = Date.now() - t0;
  const target = `${origin.url}/hit`;
  await viaProxy(c.port, target);
  await waitStored(c.cacheDir, target);
  const connections = 16;
  // Paced at 1,000 req/s: load that leaves the machine room to start the replacement, as a production
  // proxy has; a saturated closed loop would time the CPU queue instead.
  const running = load({
    port: c.port,
    target,
    connections,
    durationMs: scale.quick ? 3000 : 6000,
    rate: 1000,
  });
  await sleep(scale.quick ? 1000 : 2000);
  const victim = c.workerPids()[0];
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const r = await running;
  // The replacement's "worker listening" line (pino's time), waited for up to 20 s.
  let replacedAt = Number.NaN;
  for (let waited = 0; Number.isNaN(replacedAt) && waited < 20_000; waited += 100) {
    const line = c
      .logs()
      .find((l) => l.msg === 'worker listening' && (l.time as number) >= killedAt && l.workerPid !== victim);
    if (line) replacedAt = line.time as number;
    else await sleep(100);
  }
  await c.stop();
  await origin.close();
  const replace = replacedAt - killedAt;
  return [
    {
      probe: `kill -9 of a worker under load (${connections} keep-alive clients at 1,000 req/s, 2 workers)`,
      figure: `${r.errors} of ${r.ok + r.errors} requests failed; replacement listening after ${ms(replace)} (this cluster's own start: ${ms(startMs)})`,
      // The listening socket stays with the primary meanwhile, so no connection is refused while the
      // replacement starts. Its start (a Node process loading the worker and opening LMDB) is measured
      // against the whole cluster's start in the same run, since this shared machine's speed drifts.
      goal: `only requests in flight fail (≤ ${connections}); replacement listening sooner than a whole cluster starts`,
      met: r.errors <= connections && replace <= startMs,
    },
  ];
}

/** Byte i of a stored object is i mod 251, so any shift or gap shows. */
function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = i % 251;
  return b;
}

export async function killProxyWhileStoring(scale: Scale): Promise<Row[]> {
  const body = pattern(scale.storeBytes);
  const digest = createHash('sha256').update(body).digest('hex');
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=3600', 'Content-Length': body.length });
    // 1 MiB writes with back-pressure, so a kill lands while the body is part-stored.
    let off = 0;
    const pump = () => {
      while (off < body.length) {
        const chunk = body.subarray(off, off + 1024 * 1024);
        off += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const cacheDir = join(mkdtempSync(join(tmpdir(), 'cuttle-stress-')), 'cache');
  let partial = 0;
  let whole = 0;
  let absent = 0;
  const restarts: number[] = [];
  const cleanStarts: number[] = [];
  let c: Cuttle = await startCuttle({
    workers: 2,
    logLevel: 'warn',
    cacheDir,
    args: ['--max-object-size', '1g'],
  });
  let lost = 0;
  const committed = new Set<number>();
  for (const [k, f] of scale.killMoments.entries()) {
    // A clean start of the same build beside every other restart: the yardstick on a machine whose speed
    // drifts.
    if (k % 2 === 0) {
      const t1 = Date.now();
      const clean = await startCuttle({ workers: 2, logLevel: 'warn' });
      cleanStarts.push(Date.now() - t1);
      await clean.stop();
    }
    const target = `${origin.url}/big-${k}`;
    const port = c.port;
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: target, agent: false }, (res) => {
        let got = 0;
        res.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= f * body.length && c.proc.exitCode === null) {
            for (const pid of processTree(c.proc.pid as number)) process.kill(pid, 'SIGKILL');
          }
        });
        res.on('end', resolve);
        res.on('error', () => resolve());
        res.on('aborted', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
    // Infinity: the kill comes after the entry committed, which must then survive it whole.
    if (f === Number.POSITIVE_INFINITY) {
      await waitStored(cacheDir, target);
      committed.add(k);
    }
    if (f >= 1) for (const pid of processTree(c.proc.pid as number)) process.kill(pid, 'SIGKILL');
    await c.exited;
    await c.stop();
    const t0 = Date.now();
    c = await startCuttle({ workers: 2, logLevel: 'warn', cacheDir, args: ['--max-object-size', '1g'] });
    restarts.push(Date.now() - t0);
    // Every object asked for so far: absent, or whole and right; never part of one.
    for (let j = 0; j <= k; j++) {
      const r = await viaProxy(c.port, `${origin.url}/big-${j}`, {
        headers: { 'Cache-Control': 'only-if-cached' },
        timeoutMs: 60_000,
      });
      if (r.status === 504) {
        absent += j === k ? 1 : 0;
        if (committed.has(j)) lost++;
      } else if (r.status === 200 && createHash('sha256').update(r.body).digest('hex') === digest)
        whole += j === k ? 1 : 0;
      else partial++;
    }
  }
  await c.stop();
  await origin.close();
  rmSync(join(cacheDir, '..'), { recursive: true, force: true });
  const mib = scale.storeBytes / 1024 ** 2;
  return [
    {
      probe: `kill -9 of the whole proxy while storing a ${mib} MiB object, at ${scale.killMoments.length} moments (${scale.killMoments.map((f) => (f === Number.POSITIVE_INFINITY ? 'after the commit' : `${f * 100} %`)).join(', ')}; share of the body received)`,
      figure: `${partial} partial objects served; after each restart ${whole} whole, ${absent} absent; ${lost} committed objects lost`,
      goal: '0 partial objects; a committed object survives every later kill whole',
      met: partial === 0 && lost === 0 && whole >= committed.size,
    },
    {
      probe: 'Restart after kill -9 (spawn to listening, same cache dir), beside a clean start (fresh dir)',
      figure: `${s1(median(restarts))} median, ${s1(Math.max(...restarts))} at most; clean start ${s1(median(cleanStarts))} median`,
      // No recovery work on the start path: LMDB opens at once, the orphan sweep runs after listening. The
      // margin is for this shared machine, whose start times swing by a second between minutes.
      goal: 'median within 1.5× a clean start',
      met: median(restarts) <= 1.5 * median(cleanStarts),
    },
  ];
}

/** Faults at the origin, each answered with raw bytes on its own path. */
const FAULTS: Array<{ path: string; name: string; expect: 'cut' | 'status' | 'whole'; status?: number }> = [
  { path: '/short', name: 'short body (Content-Length 100000, 1000 sent, then close)', expect: 'cut' },
  { path: '/reset', name: 'reset mid-body (TCP RST)', expect: 'cut' },
  { path: '/bad-chunk', name: 'bad chunk size mid-body', expect: 'cut' },
  {
    path: '/conflict',
    name: 'conflicting framing (Content-Length and chunked)',
    expect: 'status',
    status: 502,
  },
  { path: '/drip', name: 'drip (20 bytes, one every 100 ms)', expect: 'whole' },
  { path: '/5xx', name: '503 without freshness', expect: 'status', status: 503 },
];

export async function originFaults(): Promise<Row[]> {
  const count = new Map<string, number>();
  const server = createServer((s: Socket) => {
    let buf = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const path = /^\S+ (\S+)/.exec(buf)?.[1] ?? '';
      buf = buf.slice(end + 4);
      count.set(path, (count.get(path) ?? 0) + 1);
      const cc = 'Cache-Control: max-age=3600\r\n';
      switch (path) {
        case '/short':
          s.end(`HTTP/1.1 200 OK\r\n${cc}Content-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
          break;
        case '/reset':
          s.write(`HTTP/1.1 200 OK\r\n${cc}Content-Length: 100000\r\n\r\n${'x'.repeat(1000)}`, () =>
            s.resetAndDestroy(),
          );
          break;
        case '/bad-chunk':
          s.write(
            `HTTP/1.1 200 OK\r\n${cc}Transfer-Encoding: chunked\r\n\r\n3e8\r\n${'x'.repeat(1000)}\r\nzz\r\n`,
          );
          break;
        case '/conflict':
          s.write(
            `HTTP/1.1 200 OK\r\n${cc}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n`,
          );
          break;
        case '/drip': {
          s.write(`HTTP/1.1 200 OK\r\n${cc}Content-Length: 20\r\n\r\n`);
          let n = 0;
          const t = setInterval(() => {
            s.write('d');
            if (++n === 20) clearInterval(t);
          }, 100);
          break;
        }
        default:
          s.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const c = await startCuttle({ workers: 2, logLevel: 'warn' });
  const rows: Row[] = [];
  let stored = 0;
  let shortAsWhole = 0;
  for (const f of FAULTS) {
    const url = `http://127.0.0.1:${port}${f.path}`;
    const outcomes: string[] = [];
    for (let i = 0; i < 2; i++) {
      try {
        const r = await viaProxy(c.port, url, { agent: false });
        outcomes.push(r.status === 200 ? `200 ${r.body.length} B` : String(r.status));
      } catch {
        outcomes.push('cut');
      }
      await sleep(200);
    }
    const fetched = count.get(f.path) ?? 0;
    let met: boolean;
    if (f.expect === 'cut') {
      met = outcomes.every((o) => o === 'cut') && fetched === 2;
      if (outcomes.some((o) => o.startsWith('200'))) shortAsWhole++;
      if (fetched < 2) stored++;
    } else if (f.expect === 'status') {
      met = outcomes.every((o) => o === String(f.status)) && fetched === 2;
      if (fetched < 2) stored++;
    } else {
      // A slow but whole response is served whole, stored, and the second request is a hit.
      met = outcomes.every((o) => o === '200 20 B') && fetched === 1;
    }
    rows.push({
      probe: `Origin fault: ${f.name}`,
      figure: `client saw ${outcomes.join(', ')}; origin asked ${fetched}×`,
      goal:
        f.expect === 'cut'
          ? 'client cut both times (never a short body as whole), not stored'
          : f.expect === 'status'
            ? `${f.status} both times, not stored`
            : 'served whole, then a hit',
      met,
    });
  }
  await c.stop();
  server.close();
  rows.push({
    probe: 'Origin faults in all',
    figure: `${shortAsWhole} short bodies passed off as whole, ${stored} faulty responses stored`,
    goal: '0 and 0',
    met: shortAsWhole === 0 && stored === 0,
  });
  return rows;
}

export async function idleConnections(scale: Scale): Promise<Row[]> {
  const origin = await hitOrigin();
  const c = await startCuttle({ workers: 2, logLevel: 'warn' });
  const target = `${origin.url}/hit`;
  await viaProxy(c.port, target);
  await waitStored(c.cacheDir, target);
  const sockets: Socket[] = [];
  const open = (n: number) =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<boolean>((resolve) => {
            const s = connect(c.port, '127.0.0.1');
            sockets.push(s);
            let got = '';
            s.on('error', () => resolve(false));
            s.on('data', (d) => {
              got += d.toString('latin1');
              if (got.length >= 1024 && got.includes('\r\n\r\n')) resolve(got.startsWith('HTTP/1.1 200'));
            });
            s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
          }),
      ),
    );
  const pid = c.proc.pid as number;
  await open(100);
  await sleep(1000);
  const before = treeAnon(pid);
  let answered = 0;
  const t0 = Date.now();
  for (let done = 100; done < scale.idleConnections + 100; done += 500)
    answered += (await open(Math.min(500, scale.idleConnections + 100 - done))).filter(Boolean).length;
  const openMs = Date.now() - t0;
  await sleep(2000);
  const after = treeAnon(pid);
  const still = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  // The idle connections still serve: a request on a sample of them.
  const sample = sockets.slice(-50);
  const reused = await Promise.all(
    sample.map(
      (s) =>
        new Promise<boolean>((resolve) => {
          let got = '';
          const t = setTimeout(() => resolve(false), 10_000);
          s.removeAllListeners('data');
          s.on('data', (d) => {
            got += d.toString('latin1');
            if (got.length >= 1024) {
              clearTimeout(t);
              resolve(got.startsWith('HTTP/1.1 200'));
            }
          });
          s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
        }),
    ),
  );
  for (const s of sockets) s.destroy();
  await c.stop();
  await origin.close();
  const perConn = (after - before) / scale.idleConnections;
  const n = scale.idleConnections;
  return [
    {
      probe: `${n.toLocaleString('en')} idle keep-alive connections (after one hit each, 2 workers)`,
      figure: `${answered.toLocaleString('en')} answered in ${s1(openMs)}, ${(still - 100).toLocaleString('en')} still open, ${reused.filter(Boolean).length}/50 reused`,
      goal: 'all answered, open and reusable',
      met: answered === n && still === n + 100 && reused.every(Boolean),
    },
    {
      probe: 'Memory per idle connection (anonymous memory of the process tree: Private_Dirty + Swap)',
      figure: `${(perConn / 1024).toFixed(1)} KiB (${((after - before) / 1024 ** 2).toFixed(1)} MiB for ${n.toLocaleString('en')})`,
      // node:http keeps a socket, its llhttp parser and buffers per connection: tens of KiB, not the few
      // KiB of nginx's event loop; the bound keeps 10,000 idle clients under about 320 MiB.
      goal: '≤ 32 KiB',
      met: perConn <= 32 * 1024,
    },
  ];
}
