/**
 * The bench's origin: fixed bodies by size, as fast as node:http goes. Run as a child process so it does not
 * share an event loop with the load generator.
 *   /hit/<size>     Cache-Control: max-age=3600
 *   /miss/<size>    Cache-Control: no-store
 *   /reval/<size>   max-age=0 with an ETag; If-None-Match → 304
 *   /slow/<size>    max-age=3600 after 200 ms (the coalesce scenario)
 *   /expiring/<size> max-age=1 after 100 ms (the thundering herd: it expires during the run)
 *   /tagged/<size>?tag=T  max-age=3600 with Surrogate-Key: T (the purge scenario)
 *   /__count?p=/x   how many requests reached a path
 *   /__count?prefix=/x/  how many reached the paths that start with /x/ (the fleet's working set)
 * It listens twice, on plain HTTP and on TLS (the connect scenario's tunnels end there), and prints both
 * ports as one JSON line.
 */
import { readFileSync } from 'node:fs';
import { createServer, type RequestListener } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { parseSize } from '../src/config/units.js';

const bodies = new Map<string, Buffer>();
const body = (size: string) => {
  let b = bodies.get(size);
  if (!b) {
    b = Buffer.alloc(parseSize(size), 'x');
    bodies.set(size, b);
  }
  return b;
};
const counts = new Map<string, number>();

const handler: RequestListener = (req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/__count')) {
    const q = new URL(url, 'http://x').searchParams;
    const prefix = q.get('prefix');
    let n = 0;
    if (prefix === null) n = counts.get(q.get('p') ?? '') ?? 0;
    else for (const [path, c] of counts) if (path.startsWith(prefix)) n += c;
    res.end(String(n));
    return;
  }
  counts.set(url, (counts.get(url) ?? 0) + 1);
  const [, kind, size] = url.split('/');
  const b = body(/^\d+[kmg]?$/.test(size ?? '') ? size : '1k');
  const send = (cc: string, extra: Record<string, string> = {}) => {
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': b.length,
      'Cache-Control': cc,
      ETag: '"b1"',
      ...extra,
    });
    res.end(b);
  };
  if (kind === 'miss') return send('no-store');
  if (kind === 'reval') {
    if (req.headers['if-none-match'] === '"b1"') {
      res.writeHead(304, { ETag: '"b1"', 'Cache-Control': 'max-age=0' });
      res.end();
      return;
    }
    return send('max-age=0');
  }
  if (kind === 'slow') {
    setTimeout(() => send('max-age=3600'), 200);
    return;
  }
  if (kind === 'tagged')
    return send('max-age=3600', { 'Surrogate-Key': new URL(url, 'http://x').searchParams.get('tag') ?? '' });
  if (kind === 'expiring') {
    setTimeout(() => send('max-age=1'), 100);
    return;
  }
  send('max-age=3600');
};

const fixture = (name: string) => readFileSync(new URL(`../../bench/fixtures/${name}`, import.meta.url));
const plain = createServer(handler);
const tls = createTlsServer({ key: fixture('origin-key.pem'), cert: fixture('origin-cert.pem') }, handler);
const listening = (s: typeof plain | typeof tls) =>
  new Promise<number>((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)),
  );
const [http, https] = await Promise.all([listening(plain), listening(tls)]);
process.stdout.write(`${JSON.stringify({ http, https })}\n`);
