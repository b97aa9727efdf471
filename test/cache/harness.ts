/**
 * The cache integration tests' shared fixture: one origin whose paths each get their own handler, and one
 * real cluster (two workers, LMDB in a temp dir) in front of it, started before and stopped after the file.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before } from 'node:test';
import {
  type Cuttle,
  type Origin,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

export type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/**
 * An origin whose paths each get their own handler, counting the requests per path and how many were in
 * flight at once; started and stopped around the test file.
 */
export function routedOrigin(prefix = '/r') {
  const routes = new Map<string, Handler>();
  const counts = new Map<string, number>();
  const inFlight = new Map<string, number>();
  const most = new Map<string, number>();
  let origin: Origin;
  let seq = 0;
  before(async () => {
    origin = await startOrigin((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      const now = (inFlight.get(path) ?? 0) + 1;
      inFlight.set(path, now);
      most.set(path, Math.max(most.get(path) ?? 0, now));
      res.on('close', () => inFlight.set(path, (inFlight.get(path) ?? 1) - 1));
      const h = routes.get(path);
      if (h) h(req, res, n);
      else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  after(() => origin.close());
  return {
    origin: () => origin,
    /** A fresh path on the origin with its own handler; returns the absolute URL. */
    route(handler: Handler): string {
      const path = `${prefix}${++seq}`;
      routes.set(path, handler);
      return `${origin.url}${path}`;
    },
    /** Replaces the handler of a URL made by `route`. */
    reroute(url: string, handler: Handler): void {
      routes.set(new URL(url).pathname, handler);
    },
    handler: (url: string) => routes.get(new URL(url).pathname) as Handler,
    /** How many requests for the URL's path reached the origin. */
    hits: (url: string) => counts.get(new URL(url).pathname) ?? 0,
    /** The most requests for the URL's path the origin had in flight at once (`reset` starts afresh). */
    most: (url: string, reset = false) => {
      const path = new URL(url).pathname;
      const m = most.get(path) ?? 0;
      if (reset) most.set(path, 0);
      return m;
    },
  };
}

export function cacheHarness() {
  const o = routedOrigin();
  let cuttle: Cuttle;
  before(async () => {
    cuttle = await startCuttle({ workers: 2, config: { visibleHostname: 'edge1' } });
  });
  after(async () => {
    await cuttle.stop();
  });

  const get = (url: string, headers: Record<string, string> = {}, method = 'GET') =>
    viaProxy(cuttle.port, url, { headers, method, agent: false });
  return {
    ...o,
    cuttle: () => cuttle,
    get,
    reply:
      (headers: Record<string, string>, body = 'body') =>
      (_q: IncomingMessage, res: ServerResponse, n: number) => {
        res.writeHead(200, headers);
        res.end(`${body}-${n}`);
      },
    /** The first request for a URL, then a wait until its entry is committed. */
    async prime(url: string, headers: Record<string, string> = {}) {
      const r = await get(url, headers);
      await waitStored(cuttle.cacheDir, url);
      return r;
    },
    status: (r: { headers: Record<string, unknown> }) => String(r.headers['cache-status']),
  };
}
