/**
 * For the tests that hold the lean front end against node:http: two clusters before one origin, fed the
 * same requests for one site, with an access log each in a temp dir, and the lean one's counters.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cuttle, viaProxy, waitStored } from './cuttle.js';

/** The one site every request names (reverse mode keys on Host). */
export const SITE = 'site.test';

/** An access-log path per front end, in a fresh temp dir. */
export function accessLogs(prefix: string): (frontEnd: string) => string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return (frontEnd) => join(dir, `${frontEnd}.log`);
}

/** Fetches `path` once through each proxy and waits until every one stored it. */
export async function storedIn(proxies: Cuttle[], path: string): Promise<void> {
  for (const c of proxies) {
    await viaProxy(c.port, path, { headers: { Host: SITE } });
    await waitStored(c.cacheDir, `http://${SITE}${path}`);
  }
}

/** `cuttle_lean_front_end_total{event}` as the cluster's /metrics says it now. */
export async function leanCount(c: Cuttle, event: string): Promise<number> {
  const r = await viaProxy(c.port, '/cuttle-internal/metrics', { headers: { Host: SITE } });
  const m = new RegExp(`cuttle_lean_front_end_total\\{event="${event}"\\} (\\d+)`).exec(String(r.body));
  return Number(m?.[1]);
}
