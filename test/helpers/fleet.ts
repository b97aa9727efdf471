/** A fleet of cuttle members on loopback for the routing tests: free ports first, then one member each. */
import {
  type Cuttle,
  type CuttleOptions,
  type Origin,
  startCuttle,
  startOrigin,
  viaProxy,
} from './cuttle.js';
import { freePort } from './sockets.js';

/** `n` distinct ports free right now on 127.0.0.1 (the members need theirs before they start: each lists all). */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Starts one member per port, each with `args(port)`. */
export function startFleet(
  ports: number[],
  opts: (port: number, i: number) => CuttleOptions,
): Promise<Cuttle[]> {
  return Promise.all(ports.map((p, i) => startCuttle({ workers: 1, ...opts(p, i) })));
}

/** The cache manager's server_list of a member, as text. */
export async function serverList(port: number): Promise<string> {
  const r = await viaProxy(port, `http://127.0.0.1:${port}/squid-internal-mgr/server_list`);
  return r.body.toString();
}

/** The Status line of peer `name` in a server_list. */
export function peerStatus(list: string, name: string): string | undefined {
  const block = list.split('\n\n').find((b) => b.includes(`: ${name}\n`));
  return /Status {5}: (.*)/.exec(block ?? '')?.[1];
}

/** Runs `fn` over `items`, `concurrency` at a time. */
export async function pooled<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/** The member that fetched from the origin: the last Via member of the request the origin received. */
export function fetchedBy(via: string | string[] | undefined): string {
  const v = Array.isArray(via) ? via.join(', ') : (via ?? '');
  const last = v.split(',').pop()?.trim() ?? '';
  return last.split(/\s+/)[1] ?? '';
}

/** An origin whose every answer is `body of <path>`, fresh for ten minutes. */
export function cacheableOrigin(): Promise<Origin> {
  return startOrigin((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=600' });
    res.end(`body of ${req.url}`);
  });
}
