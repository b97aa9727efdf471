/**
 * The platform's floor: a node:http cluster (same worker count as cuttle, round-robin like cuttle's) that
 * answers every request with a fixed body of the size its path names, headers like a cache hit's and no
 * other work. `node dist/bench/reference.js PORT WORKERS`. The gap between it and cuttle is cuttle's own cost.
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { parseSize } from '../src/config/units.js';

const [port, workers] = process.argv.slice(2).map(Number);

if (cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const bodies = new Map<string, Buffer>();
  createServer((req, res) => {
    const size = /\/(\d+[kmg]?)(?:\?|$)/.exec(req.url ?? '')?.[1] ?? '1k';
    let body = bodies.get(size);
    if (!body) {
      body = Buffer.alloc(parseSize(size), 'x');
      bodies.set(size, body);
    }
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': body.length,
      'Cache-Control': 'max-age=3600',
      ETag: '"b1"',
    });
    res.end(body);
  }).listen(port, '127.0.0.1');
}
