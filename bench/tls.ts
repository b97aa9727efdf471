/**
 * The HTTPS edge's bench (`--tls`, `--h2`): cuttle with --https-port beside nginx with `listen … ssl http2`,
 * both reverse proxies of the bench's origin with the same certificate (bench/fixtures). Hits over
 * HTTPS/1.1 come from wrk, over HTTP/2 from h2load (Debian's nghttp2-client), and the handshake rate from
 * full TLS handshakes (no resumption) made back to back on a few connections at a time.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../src/shared/version.js';
import { startCuttle } from '../test/helpers/cuttle.js';
import type { Figures } from './load.js';
import {
  freePort,
  nginxPrelude,
  type OriginPorts,
  peerVersion,
  type System,
  startProcess,
} from './systems.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../bench/fixtures/${name}`, import.meta.url));
export const EDGE_CERT = fixture('origin-cert.pem');
export const EDGE_KEY = fixture('origin-key.pem');

/** One request over HTTPS/1.1 (the certificate is the bench's own: not verified). */
export function probeTls(
  port: number,
  path: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`request for ${path} timed out after 10 s`)));
    req.end();
  });
}

/** cuttle as an HTTPS edge: HTTPS alone (`--port 0`), HTTP/1.1 and HTTP/2 on that port. */
export async function startCuttleTls(workers: number, origin: OriginPorts): Promise<System> {
  const c = await startCuttle({
    workers,
    logLevel: 'warn',
    args: [
      '--origin',
      `http://127.0.0.1:${origin.http}`,
      '--https-port',
      '0',
      '--tls-cert',
      EDGE_CERT,
      '--tls-key',
      EDGE_KEY,
    ],
  });
  return {
    name: 'cuttle',
    version: VERSION,
    port: c.httpsPort as number,
    forward: false,
    isHit: (h) => /; hit/.test(String(h['cache-status'])),
    pid: c.proc.pid as number,
    stop: async () => {
      await c.stop();
    },
  };
}

function nginxTlsConf(dir: string, port: number, origin: OriginPorts, workers: number): string {
  return `${nginxPrelude(dir, origin, workers, 'an HTTPS edge, HTTP/1.1 and HTTP/2')}  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${EDGE_CERT};
    ssl_certificate_key ${EDGE_KEY};
    http2_max_concurrent_streams 100;
    # nginx closes a connection after 1,000 requests by default (h2 too, since 1.19.7): h2load counts the
    # streams refused then as errors, and cuttle keeps its connections open.
    keepalive_requests 1000000;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }
}
`;
}

/** nginx with the same certificate, when installed. */
export async function startNginxTls(baseDir: string, origin: OriginPorts, workers: number): Promise<System> {
  const version = peerVersion('nginx');
  if (version === null) throw new Error('nginx is not installed (npm run bench -- --install-peers)');
  const dir = join(baseDir, 'nginx-tls');
  mkdirSync(dir, { recursive: true });
  // nginx's workers drop root privileges and must write their temp files here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), nginxTlsConf(dir, port, origin, workers));
  const sys = await startProcess('nginx', 'nginx', ['-c', join(dir, 'nginx.conf')], port);
  return { ...sys, name: 'nginx', version, forward: false, isHit: (h) => h['x-cache-status'] === 'HIT' };
}

function run(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.once('error', reject);
    p.once('close', () => resolve(out));
  });
}

/** HTTP/2 load from h2load: `connections` connections, 10 streams each, for the duration. */
export async function loadH2(
  port: number,
  path: string,
  bytes: number,
  connections: number,
  duration: number,
): Promise<Figures> {
  const out = await run('h2load', [
    '-D',
    String(duration),
    '-c',
    String(connections),
    '-m',
    '10',
    '-t',
    '1',
    `https://127.0.0.1:${port}${path}`,
  ]);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const rps = num(/finished in [\d.]+\w+, ([\d.]+) req\/s/);
  const requests =
    /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  // h2load reports the mean and spread of request times, not percentiles: the mean stands in for p50.
  const mean = /time for request:\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)/.exec(out);
  const ms = mean ? Number(mean[1]) * ({ us: 0.001, ms: 1, s: 1000 }[mean[2]] ?? 1) : 0;
  if (!requests) throw new Error(`h2load gave no figures: ${out.slice(-300)}`);
  return {
    tool: 'h2load',
    requestsPerSec: rps,
    mbPerSec: (rps * bytes) / 1e6,
    p50: ms,
    p99: 0,
    p999: 0,
    errors: Number(requests[2]) + Number(requests[3]),
    timeouts: Number(requests[4]),
    non2xx: status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : 0,
    mismatches: 0,
    note: 'p50 is h2load’s mean request time; bodies verified before and after',
  };
}

/** Full TLS handshakes per second (new sessions each time), `concurrency` at a time, for the duration. */
export async function handshakeRate(port: number, concurrency: number, duration: number): Promise<Figures> {
  const until = Date.now() + duration * 1000;
  let done = 0;
  let errors = 0;
  const times: number[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      s.once('secureConnect', () => {
        times.push(performance.now() - start);
        done++;
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        errors++;
        resolve();
      });
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) await one();
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))] ?? 0;
  return {
    tool: 'node:tls',
    requestsPerSec: done / seconds,
    mbPerSec: 0,
    p50: pct(50),
    p99: pct(99),
    p999: pct(99.9),
    errors,
    timeouts: 0,
    non2xx: 0,
    mismatches: 0,
    note: `${concurrency} at a time, full handshakes (no resumption)`,
  };
}
