/**
 * RFC 5861 §3 "once per object" across workers: a claim on a stale entry's background revalidation is a
 * marker record in the shared `uses` database, taken in a write transaction.
 */
import type { RevalidationClaims, StoredEntry } from '../store.js';
import type { CacheEnv } from './layout.js';
import type { WriteFailed } from './write-failed.js';

const marker = (key: string) => `revalidating\u0000${key}`;

export class LmdbClaims implements RevalidationClaims {
  constructor(
    private readonly env: CacheEnv,
    private readonly writeFailed: WriteFailed,
  ) {}

  async claim(key: string, ttlMs: number, seen: StoredEntry): Promise<boolean> {
    const { uses, entries } = this.env;
    try {
      return await uses.transaction(() => {
        const now = Date.now();
        const cur = uses.get(marker(key));
        if (cur && now - cur.since < ttlMs) return false;
        // A worker reading an older snapshot may see stale what another worker has just revalidated; the
        // write transaction sees the latest entry, so that revalidation is not repeated.
        const stored = entries.get(key);
        if (stored?.kind === 'entry' && stored.responseTime !== seen.responseTime) return false;
        uses.putSync(marker(key), { count: 0, since: now });
        return true;
      });
    } catch (err) {
      this.writeFailed(err);
      return false;
    }
  }

  release(key: string): void {
    this.env.uses.remove(marker(key)).catch(this.writeFailed);
  }
}
