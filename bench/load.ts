/**
 * Load generation for the bench: autocannon through its programmatic API (the default), wrk when asked,
 * and a tunnel load for the connect scenario (CONNECT, then TLS to the origin, then keep-alive GETs).
 * Every figure names the tool that produced it.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { type Agent, type IncomingHttpHeaders, request } from 'node:http';
import { createRequire } from 'node:module';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

export interface Figures {
  requestsPerSec: number;
  mbPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches: number;
  tool: string;
  note?: string;
}

export interface LoadOptions {
  port: number;
  /** Request target: absolute-form for forward proxies, origin-form for reverse proxies. */
  target: string;
  /** Several targets instead, each connection going through them in turn (the fleet's working set). */
  targets?: readonly string[];
  /** Extra request header fields (the fleet's Host, the same through every member). */
  headers?: Record<string, string>;
  bytes: number;
  connections: number;
  duration: number;
  tool: 'autocannon' | 'wrk';
  scratchDir: string;
  /** Over TLS (wrk only; the certificate is not verified). */
  https?: boolean;
  /** Called about four times a second with the seconds elapsed and the requests done so far (if known). */
  progress?: (elapsed: number, requests: number | null) => void;
}

export const rightBody = (b: Buffer, bytes: number) => b.length === bytes && b.every((x) => x === 0x78);

/** One request; returns status, headers and the body. */
export function probe(
  port: number,
  target: string,
  headers?: Record<string, string>,
  agent: Agent | false = false,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: target, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`request for ${target} timed out after 10 s`)));
    req.end();
  });
}

function ticker(opts: LoadOptions, requests: () => number | null): () => void {
  if (!opts.progress) return () => {};
  const started = Date.now();
  const timer = setInterval(() => opts.progress?.((Date.now() - started) / 1000, requests()), 250);
  return () => clearInterval(timer);
}

interface AutocannonResult {
  requests: { average: number };
  throughput: { average: number };
  latency: { p50: number; p99: number; p99_9?: number; p999?: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches?: number;
}
type Instance = { on(event: 'response', cb: () => void): void };
type Autocannon = (
  opts: Record<string, unknown>,
  cb: (err: Error | null, r: AutocannonResult) => void,
) => Instance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export async function load(opts: LoadOptions): Promise<Figures> {
  return opts.tool === 'wrk' ? loadWrk(opts) : loadAutocannon(opts);
}

function loadAutocannon(opts: LoadOptions): Promise<Figures> {
  let done = 0;
  const stop = ticker(opts, () => done);
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url: `http://127.0.0.1:${opts.port}`,
        connections: opts.connections,
        duration: opts.duration,
        requests: (opts.targets ?? [opts.target]).map((path) => ({ method: 'GET', path })),
        ...(opts.headers ? { headers: opts.headers } : {}),
        verifyBody: (body: string) => body.length === opts.bytes,
      },
      (err, r) => {
        stop();
        if (err) return reject(err);
        resolve({
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
        });
      },
    );
    inst.on('response', () => {
      done++;
    });
  });
}

async function loadWrk(opts: LoadOptions): Promise<Figures> {
  // wrk's own percentiles include p99.9 only through a script; the done() hook prints them.
  const script = join(opts.scratchDir, 'wrk.lua');
  const targets = opts.targets ?? [opts.target];
  // wrk sets wrk.headers["Host"] itself: a field of another case would go out beside it, a second Host.
  const fields = Object.entries(opts.headers ?? {})
    .map(([k, v]) => `wrk.headers["${k.toLowerCase() === 'host' ? 'Host' : k}"] = "${v}"\n`)
    .join('');
  // One target as wrk.path; several through a request() that takes them in turn.
  const paths =
    targets.length === 1
      ? `wrk.path = "${targets[0]}"\n`
      : `local paths = {${targets.map((t) => `"${t}"`).join(',')}}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
`;
  writeFileSync(
    script,
    `${paths}${fields}done = function(summary, latency, requests)
  io.write(string.format("P50 %d\\nP99 %d\\nP999 %d\\n", latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`,
  );
  const stop = ticker(opts, () => null);
  const r = await new Promise<{ stdout: string }>((resolve, reject) => {
    const p = spawn(
      'wrk',
      [
        '-t1',
        `-c${opts.connections}`,
        `-d${opts.duration}s`,
        '-s',
        script,
        `${opts.https ? 'https' : 'http'}://127.0.0.1:${opts.port}/`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.once('error', reject);
    p.once('close', () => resolve({ stdout }));
  });
  stop();
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? 0);
  const rps = num(/Requests\/sec:\s+([\d.]+)/);
  const bytesRead = /Transfer\/sec:\s+([\d.]+)([KMG]?B)/.exec(r.stdout);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
  const scale: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  return {
    tool: 'wrk',
    requestsPerSec: rps,
    mbPerSec: bytesRead
      ? (Number(bytesRead[1]) * (scale[bytesRead[2]] ?? 1)) / 1e6
      : (rps * opts.bytes) / 1e6,
    p50: num(/P50 (\d+)/) / 1000,
    p99: num(/P99 (\d+)/) / 1000,
    p999: num(/P999 (\d+)/) / 1000,
    errors: socket ? Number(socket[1]) + Number(socket[2]) + Number(socket[3]) : 0,
    timeouts: socket ? Number(socket[4]) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    mismatches: 0,
    note: 'bodies verified after the run',
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The connect scenario: `connections` tunnels through the proxy to the TLS origin, each a keep-alive
 * HTTPS connection doing GETs back to back for the duration; every body is checked byte by byte.
 */
export async function tunnelLoad(opts: LoadOptions & { tlsPort: number; path: string }): Promise<Figures> {
  const ca = readFileSync(new URL('../../bench/fixtures/origin-cert.pem', import.meta.url));
  const latencies: number[] = [];
  let bytesIn = 0;
  let errors = 0;
  let mismatches = 0;
  let non2xx = 0;
  const stop = ticker(opts, () => latencies.length);
  const started = Date.now();
  const deadline = started + opts.duration * 1000;
  const request = `GET ${opts.path} HTTP/1.1\r\nHost: 127.0.0.1:${opts.tlsPort}\r\n\r\n`;

  const one = async (): Promise<void> => {
    const raw = netConnect(opts.port, '127.0.0.1');
    raw.on('error', () => {});
    raw.write(`CONNECT 127.0.0.1:${opts.tlsPort} HTTP/1.1\r\nHost: 127.0.0.1:${opts.tlsPort}\r\n\r\n`);
    const head = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const onData = (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n')) {
          raw.off('data', onData);
          resolve(buf);
        }
      };
      raw.on('data', onData);
      raw.once('error', reject);
      raw.once('close', () => reject(new Error('proxy closed the CONNECT')));
    });
    if (!/^HTTP\/1\.[01] 200/.test(head)) throw new Error(`CONNECT refused: ${head.split('\r\n')[0]}`);
    const tls = tlsConnect({ socket: raw, ca, host: '127.0.0.1', servername: '' });
    tls.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      tls.once('secureConnect', resolve);
      tls.once('error', reject);
    });
    let buf: Buffer = Buffer.alloc(0);
    let wake: (() => void) | null = null;
    let closed = false;
    tls.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      wake?.();
    });
    tls.once('close', () => {
      closed = true;
      wake?.();
    });
    const more = () =>
      new Promise<void>((resolve) => {
        wake = resolve;
      });
    while (Date.now() < deadline && !closed) {
      const t0 = performance.now();
      tls.write(request);
      while (buf.indexOf('\r\n\r\n') < 0 && !closed) await more();
      const end = buf.indexOf('\r\n\r\n');
      if (closed) break;
      const header = buf.subarray(0, end).toString('latin1');
      const length = Number(/content-length:\s*(\d+)/i.exec(header)?.[1] ?? -1);
      if (length < 0) throw new Error('tunnelled response without Content-Length');
      while (buf.length < end + 4 + length && !closed) await more();
      if (closed) break;
      const body = buf.subarray(end + 4, end + 4 + length);
      buf = buf.subarray(end + 4 + length);
      latencies.push(performance.now() - t0);
      bytesIn += body.length;
      if (!/^HTTP\/1\.1 2/.test(header)) non2xx++;
      else if (!rightBody(body, opts.bytes)) mismatches++;
    }
    tls.end();
  };

  const results = await Promise.allSettled(Array.from({ length: opts.connections }, one));
  stop();
  errors += results.filter((r) => r.status === 'rejected').length;
  const firstError = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const seconds = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    tool: 'node:tls',
    requestsPerSec: latencies.length / seconds,
    mbPerSec: bytesIn / seconds / 1e6,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    errors,
    timeouts: 0,
    non2xx,
    mismatches,
    note: firstError ? `first error: ${(firstError.reason as Error).message}` : undefined,
  };
}
