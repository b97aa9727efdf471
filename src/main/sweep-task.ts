/**
 * Runs in a piscina worker thread of the primary, off every request path (Varnish's expiry thread):
 * keeps the cache under its size bound by evicting the least recently used entries, and removes body
 * chunks that no entry references (writes cut short by a crash, a replacement or an abort).
 */
import {
  bodyIdTime,
  type CacheEnv,
  dropEntry,
  openCacheEnv,
  silenceCommitError,
} from '../store/lmdb/layout.js';
import { storedBytes } from '../store/store.js';

export interface SweepJob {
  cacheDir: string;
  cacheSize: number;
  /** Evict down to this fraction of the bound once over it. */
  lowWater: number;
  /** Body chunks whose id was made before this time (ms) and that no entry references are removed. */
  orphansBefore: number;
}

export interface SweepResult {
  entries: number;
  bytes: number;
  evicted: number;
  orphanChunks: number;
}

/** Metadata and header bytes an entry costs beyond its body, roughly. */
const ENTRY_OVERHEAD = 512;

let env: CacheEnv | null = null;

/** A failed commit carries a second promise to handle (silenceCommitError); the sweep itself still fails. */
function handled<T>(p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    silenceCommitError(err);
    throw err;
  });
}

export default async function sweep(job: SweepJob): Promise<SweepResult> {
  env ??= openCacheEnv(job.cacheDir, job.cacheSize);
  const e: CacheEnv = env;
  const { entries, bodies, atime } = e;
  // A thread that sits idle between sweeps would otherwise keep reading its last snapshot.
  env.root.resetReadTxn();
  const items: Array<{ key: string; size: number; atime: number; bodyId: string }> = [];
  const referenced = new Set<string>();
  let bytes = 0;
  for (const { key, value } of entries.getRange()) {
    if (value.kind === 'vary') continue;
    const size = storedBytes(value) + ENTRY_OVERHEAD;
    bytes += size;
    // A partial entry references one body per piece; its own bodyId (the newest piece's) is its version.
    if (value.kind === 'partial') for (const p of value.pieces) referenced.add(p.bodyId);
    else referenced.add(value.bodyId);
    items.push({ key, size, atime: atime.get(key) ?? value.responseTime, bodyId: value.bodyId });
  }

  let evicted = 0;
  if (bytes > job.cacheSize) {
    items.sort((a, b) => a.atime - b.atime);
    const victims: typeof items = [];
    const target = job.cacheSize * job.lowWater;
    for (const it of items) {
      if (bytes <= target) break;
      victims.push(it);
      bytes -= it.size;
    }
    await handled(
      entries.transaction(() => {
        for (const v of victims) {
          const cur = entries.get(v.key);
          // Skip an entry replaced since the scan; its new version is judged next time.
          if (cur === undefined || cur.kind === 'vary' || cur.bodyId !== v.bodyId) continue;
          dropEntry(e, v.key, cur);
          referenced.delete(v.bodyId);
          evicted++;
        }
      }),
    );
  }

  const orphans: Array<[string, number]> = [];
  for (const key of bodies.getKeys()) {
    const [id] = key as [string, number];
    if (!referenced.has(id) && bodyIdTime(id) < job.orphansBefore) orphans.push(key as [string, number]);
  }
  if (orphans.length > 0) {
    await handled(
      bodies.transaction(() => {
        for (const k of orphans) bodies.removeSync(k);
      }),
    );
  }
  return { entries: items.length - evicted, bytes, evicted, orphanChunks: orphans.length };
}
