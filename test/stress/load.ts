/**
 * Load for the stress probes, all to 127.0.0.1: a closed or paced loop of keep-alive GETs that records
 * every latency and error, and the slowloris attacker, which runs in its own process so that its thousand
 * sockets cost the measuring process nothing.
 */
import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface LoadResult {
  ok: number;
  errors: number;
  /** Latencies of the successful requests, in ms, sorted. */
  latencies: number[];
}

export const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : Number.NaN;

export const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/**
 * `connections` loops of GETs for `durationMs`; with `rate` (requests/s over all loops) each loop waits so
 * that the load stays under the machine's capacity and latency measures service, not queueing.
 */
export async function load(opts: {
  port: number;
  target: string;
  connections: number;
  durationMs: number;
  rate?: number;
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const result: LoadResult = { ok: 0, errors: 0, latencies: [] };
  const until = Date.now() + opts.durationMs;
  const gap = opts.rate ? (1000 * opts.connections) / opts.rate : 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port: opts.port, path: opts.target, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            result.ok++;
            result.latencies.push(performance.now() - t0);
          } else result.errors++;
          resolve();
        });
        res.on('error', () => {
          result.errors++;
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        result.errors++;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: opts.connections }, async (_, i) => {
      if (gap) await sleep((gap * i) / opts.connections);
      while (Date.now() < until) {
        const start = Date.now();
        await one();
        if (gap) await sleep(Math.max(0, gap - (Date.now() - start)));
      }
    }),
  );
  agent.destroy();
  result.latencies.sort((a, b) => a - b);
  return result;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SlowlorisReport {
  opened: number;
  /** Connections the proxy answered 408, and after how long (ms). */
  timedOut: number[];
  /** Closed with no 408 (reset, or closed silently). */
  otherClose: number;
  /** How those closed: the socket error code, or what arrived. */
  otherReasons: Record<string, number>;
}

/** Starts the attacker in a child process; `stop()` ends it and returns what it saw. */
export async function slowloris(
  port: number,
  connections: number,
  reconnect: boolean,
): Promise<{ stop(): Promise<SlowlorisReport>; done: Promise<SlowlorisReport> }> {
  const child = fork(
    fileURLToPath(import.meta.url),
    ['--slowloris', String(port), String(connections), String(reconnect)],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const done = new Promise<SlowlorisReport>((resolve) =>
    child.on('message', (m: { report?: SlowlorisReport }) => m.report && resolve(m.report)),
  );
  await new Promise<void>((resolve) => child.on('message', (m: { ready?: boolean }) => m.ready && resolve()));
  return {
    done,
    stop: async () => {
      if (child.connected) child.send('stop');
      const r = await done;
      if (child.connected) child.disconnect();
      return r;
    },
  };
}

/**
 * The attacker: `n` connections that each send a request line and then one header byte a second, never
 * finishing the header section (with `reconnect`, a closed one is replaced, as a real attack does).
 */
function attack(port: number, n: number, reconnect: boolean): void {
  const report: SlowlorisReport = { opened: 0, timedOut: [], otherClose: 0, otherReasons: {} };
  const open = new Set<Socket>();
  let stopping = false;
  const finish = () => {
    for (const s of open) s.destroy();
    process.send?.({ report });
    setTimeout(() => process.exit(0), 100);
  };
  const one = () => {
    const t0 = Date.now();
    const s = connect(port, '127.0.0.1');
    let got = '';
    open.add(s);
    report.opened++;
    s.setNoDelay(true);
    // Queued before any trickled byte, so the request line always comes first.
    s.write('GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
    let error = '';
    s.on('error', (e: Error & { code?: string }) => {
      error = e.code ?? e.message;
    });
    s.on('close', () => {
      open.delete(s);
      if (got.startsWith('HTTP/1.1 408')) report.timedOut.push(Date.now() - t0);
      else if (!stopping) {
        report.otherClose++;
        const why = error || (got ? got.slice(0, 12) : 'closed silently');
        report.otherReasons[why] = (report.otherReasons[why] ?? 0) + 1;
      }
      if (reconnect && !stopping) one();
      else if (!reconnect && open.size === 0) finish();
    });
  };
  // Ramp up as an attacker does (100 every 50 ms), not in one burst that overflows the listen backlog.
  let opened = 0;
  const ramp = setInterval(() => {
    for (let k = 0; k < 100 && opened < n; k++, opened++) one();
    if (opened >= n) clearInterval(ramp);
  }, 50);
  // One byte per connection per second, spread over the second so the proxy sees a steady trickle.
  let i = 0;
  const tick = setInterval(() => {
    const batch = Math.ceil(open.size / 20);
    const list = [...open];
    for (let k = 0; k < batch && list.length; k++) list[(i + k) % list.length].write('a');
    i += batch;
  }, 50);
  const ready = setInterval(() => {
    if (opened >= n && [...open].every((s) => !s.connecting)) {
      clearInterval(ready);
      process.send?.({ ready: true });
    }
  }, 20);
  process.on('message', (m) => {
    if (m !== 'stop') return;
    stopping = true;
    clearInterval(tick);
    finish();
  });
}

if (process.argv[2] === '--slowloris')
  attack(Number(process.argv[3]), Number(process.argv[4]), process.argv[5] === 'true');
