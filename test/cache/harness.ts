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

export function cacheHarness() {
  const routes = new Map<string, Handler>();
  const counts = new Map<string, number>();
  let origin: Origin;
  let cuttle: Cuttle;
  let seq = 0;

  before(async () => {
    origin = await startOrigin((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      const h = routes.get(path);
      if (h) h(req, res, n);
      else {
        res.writeHead(404);
        res.end();
      }
    });
    cuttle = await startCuttle({ workers: 2, config: { visibleHostname: 'edge1' } });
  });
  after(async () => {
    await cuttle.stop();
    await origin.close();
  });

  const get = (url: string, headers: Record<string, string> = {}, method = 'GET') =>
    viaProxy(cuttle.port, url, { headers, method, agent: false });
  return {
    origin: () => origin,
    cuttle: () => cuttle,
    /** A fresh path on the origin with its own handler; returns the absolute URL. */
    route(handler: Handler): string {
      const path = `/r${++seq}`;
      routes.set(path, handler);
      return `${origin.url}${path}`;
    },
    /** How many requests for the URL's path reached the origin. */
    hits: (url: string) => counts.get(new URL(url).pathname) ?? 0,
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
