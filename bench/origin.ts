/**
 * The bench's origin: fixed bodies by size, as fast as node:http goes. Run as a child process so it does not
 * share an event loop with the load generator.
 *   /hit/<size>     Cache-Control: max-age=3600
 *   /miss/<size>    Cache-Control: no-store
 *   /reval/<size>   max-age=0 with an ETag; If-None-Match → 304
 *   /slow/<size>    max-age=3600 after 200 ms (the coalesce scenario)
 *   /__count?p=/x   how many requests reached a path
 */
import { createServer } from 'node:http';
import { parseSize } from '../src/shared/units.js';

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

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/__count')) {
    res.end(String(counts.get(new URL(url, 'http://x').searchParams.get('p') ?? '') ?? 0));
    return;
  }
  counts.set(url, (counts.get(url) ?? 0) + 1);
  const [, kind, size] = url.split('/');
  const b = body(/^\d+[kmg]?$/.test(size ?? '') ? size : '1k');
  const send = (cc: string) => {
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': b.length,
      'Cache-Control': cc,
      ETag: '"b1"',
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
  send('max-age=3600');
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as { port: number }).port}\n`);
});
